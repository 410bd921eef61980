// Which Nix binaries the integration tests run against, and the settings
// that let them build offline as root without a daemon.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** Offline, daemonless, sandbox-less: what this machine allows. Never the product's settings. */
export const TEST_NIX_CONFIG = [
  "experimental-features = nix-command flakes",
  "sandbox = false",
  "build-users-group =",
  "substituters =",
  "flake-registry =",
  "warn-dirty = false",
].join("\n");

export interface TestNix {
  /** Directory holding `nix` (what NIX_BIN names). */
  bin: string;
  version: string;
}

const DEFAULT_BINS = ["/usr/bin", "/opt/nix-trixie/usr/bin", "/opt/nix-sid/usr/bin"];

/**
 * The Nix versions under test: $NIXOS_CLOSURE_TEST_NIX_BINS (colon-separated
 * directories holding `nix`), else the three that scripts/install-nix.sh installs.
 */
export function testNixes(): TestNix[] {
  const listed = process.env.NIXOS_CLOSURE_TEST_NIX_BINS;
  const bins = listed ? listed.split(":").filter((b) => b !== "") : DEFAULT_BINS.filter((b) => existsSync(join(b, "nix")));
  if (bins.length === 0)
    throw new Error("no nix to test with: run `bash scripts/install-nix.sh` or set NIXOS_CLOSURE_TEST_NIX_BINS");
  return bins.map((bin) => ({
    bin,
    version: execFileSync(join(bin, "nix"), ["--version"], { encoding: "utf8" }).trim(),
  }));
}

/** Runs nix of a test version synchronously (for test setup and checks, not the product). */
export function nixSync(nix: TestNix, args: string[], options: { input?: string } = {}): string {
  return execFileSync(join(nix.bin, "nix"), ["--extra-experimental-features", "nix-command flakes", ...args], {
    encoding: "utf8",
    env: { ...process.env, NIX_CONFIG: TEST_NIX_CONFIG },
    input: options.input,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/**
 * A suffix of this test process's own, for names that end up in store paths
 * (a VM's name is its system's host name, so its toplevel's name): the Nix
 * store is shared with every other run of the suite on the machine, and a
 * test that counts the bytes only its VM holds, or deletes a path, needs
 * paths no other run builds at the same time.
 */
const RUN_SALT = `${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;

/** `name` made this run's own (a VM name stays a valid host name). */
export function ownName(name: string): string {
  return `${name}-${RUN_SALT}`;
}

function readProc(pid: string, what: "cmdline" | "environ"): string {
  try {
    return readFileSync(`/proc/${pid}/${what}`, "utf8").replaceAll("\0", " ");
  } catch {
    return ""; // gone since, or not ours to read
  }
}

function cwdOf(pid: string): string {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return "";
  }
}

/**
 * Command lines of the running processes (other than this one) that belong
 * to a test's own directory `root` (a workbench's): its path in their command
 * line or environment (the steps run with the workbench's), or their working
 * directory under it. Other runs of the suite on the machine have roots of
 * their own, whatever names their VMs have.
 */
export function processesOf(root: string): string[] {
  const inside = (text: string) => text.includes(`${root}/`) || text.includes(`${root} `) || text.endsWith(root);
  return readdirSync("/proc")
    .filter((pid) => /^\d+$/.test(pid) && Number(pid) !== process.pid)
    .flatMap((pid) => {
      const cmdline = readProc(pid, "cmdline");
      if (cmdline === "") return []; // gone, or a kernel thread
      const cwd = cwdOf(pid);
      return inside(cmdline) || inside(readProc(pid, "environ")) || cwd === root || cwd.startsWith(`${root}/`) ? [cmdline] : [];
    });
}
