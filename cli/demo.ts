// `nixos-closure demo`: the whole flow on any machine with Nix, offline, in
// a state directory of its own under the OS temp dir (removed unless --keep):
// render, lock and build a VM against the example library and the stand-in
// nixpkgs shipped in examples/, prepare its root, and show the report.
import { randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeTree } from "../f/nix/lib/build/root/generations.ts";
import { privatePath } from "../f/nix/lib/core/files.ts";
import { type Logger, shellQuote } from "../f/nix/lib/core/log.ts";
import { pathFlakeRef } from "../f/nix/lib/nix/flake_ref.ts";
import { flakeLock } from "../f/nix/lib/nix/operations.ts";
import { type ContextOptions, runStep, withContextOptions } from "../f/nix/lib/steps/context.ts";
import { installExamples } from "./examples.ts";
import { type FlowInput, loadFlow, runFlow, runInProcess } from "./flow.ts";

/**
 * The stand-in's packages are built by the host's /bin/sh and coreutils, so
 * the demo builds outside Nix's sandbox (and, as root without a daemon,
 * without build users), offline, with no registry; Nix ignores what the user
 * may not change (a daemon's untrusted users keep the sandbox, and the demo's
 * builds then fail with Nix's own message).
 */
const DEMO_NIX_CONFIG = [
  // First: Nix reads flake-registry below only with flakes on (the command line turns them on too late for it).
  "extra-experimental-features = nix-command flakes",
  "sandbox = false",
  "build-users-group =",
  "substituters =",
  "flake-registry =",
  "warn-dirty = false",
].join("\n");

/**
 * The demo's VM: xfsprogs comes from a source directory of the demo's own, as
 * an operator's checkout would, and that source changes at every run, so
 * every demo builds something and shows the live progress (its builder
 * prints a line every quarter second).
 */
function demoInput(sourceDir: string | null): FlowInput {
  const preBuild = 'for part in libxfs libxlog mkfs repair db io; do echo "compiling $part"; sleep 0.25; done';
  const overrides = sourceDir === null ? [] : [{ pkg: "xfsprogs", src: sourceDir, attrs: { preBuild } }];
  return {
    guest: { vm_name: "demo", home: false },
    closure: { profiles: ["devel"], test_suites: ["fstests"], overrides },
    root: { prepare: true },
  };
}

/** A source tree that differs from every earlier run's. */
function writeDemoSource(stateDir: string): string {
  const dir = join(stateDir, "xfsprogs-src");
  mkdirSync(dir);
  writeFileSync(join(dir, "VERSION"), `demo checkout of ${new Date().toISOString()} (${randomUUID()})\n`);
  return dir;
}

export interface DemoRun {
  stateDir: string;
  result: Record<string, unknown>;
}

/** The variables that make nixos-closure work in the demo's state directory, as a file a shell sources. */
const DEMO_VARIABLES = ["WORKERS_DIR", "WORKER_INDEX", "WORKBENCH_DIR", "SYSTEM_DIR", "NIXOS_FLAKE_DIR", "NIX_CONFIG"];

/** `<stateDir>/env.sh`: a kept demo's worker, for the operator's own builds against its example library. */
function writeDemoEnv(stateDir: string, env: Record<string, string | undefined>): void {
  const lines = DEMO_VARIABLES.map((name) => `export ${name}=${shellQuote(env[name] ?? "")}`);
  writeFileSync(
    join(stateDir, "env.sh"),
    `# The demo's worker: source it to build against its example library.\n${lines.join("\n")}\n`,
  );
}

/** The result less the fields that name a path in `dir` (removed: config_dir, root_dir, ...). */
function withoutPathsIn(result: Record<string, unknown>, dir: string): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(result).filter(([, value]) => !(typeof value === "string" && (value === dir || value.startsWith(`${dir}/`)))),
  );
}

/**
 * Runs the demo with a command's context options, in a worker of its own
 * (its environment points into the state directory); the state directory is
 * removed afterwards unless `keep` (and the result names nothing in it).
 */
export async function runDemo(options: ContextOptions, keep: boolean): Promise<DemoRun> {
  const log: Logger = options.log;
  const stateDir = mkdtempSync(join(tmpdir(), "nixos-closure-demo-"));
  // Readable by all, as the store its library goes into: a kept demo's library can be built against again.
  chmodSync(stateDir, 0o755);
  // A source Nix copies into the store must be readable by all (the flow refuses a private one): under a
  // private temp dir, the demo goes without.
  const hidden = privatePath(stateDir);
  log.info(
    "nixos-closure demo: a VM built against the EXAMPLE library and the STAND-IN nixpkgs shipped with this tool\n" +
      "(small, offline, built by your /bin/sh: not NixOS), " +
      (hidden === null
        ? "with xfsprogs from a source directory of its own\n(as your checkout would be: an edit lands in the next build), "
        : "") +
      "in a state directory of its own:\n" +
      `  ${stateDir}${keep ? "" : " (removed afterwards; --keep keeps it)"}`,
  );
  if (hidden !== null) log.warn(`${hidden} is private: the demo builds xfsprogs without a source directory of its own`);
  try {
    const { libraryDir } = installExamples(stateDir);
    const env = {
      ...options.env,
      WORKERS_DIR: join(stateDir, "workers"),
      WORKER_INDEX: "0",
      WORKBENCH_DIR: stateDir,
      SYSTEM_DIR: join(stateDir, "system"),
      NIXOS_FLAKE_DIR: libraryDir,
      NIX_CONFIG: [options.env.NIX_CONFIG ?? "", DEMO_NIX_CONFIG].join("\n"),
    };
    if (keep) writeDemoEnv(stateDir, env);
    const input = demoInput(hidden === null ? writeDemoSource(stateDir) : null);
    const run = await withContextOptions({ ...options, env }, async () => {
      // The example library pins its stand-in nixpkgs, as the real one pins nixpkgs.
      const libraryRef = pathFlakeRef(libraryDir, "the demo's state directory (under TMPDIR)");
      await runStep("demo", null, async (context) => flakeLock(await context.nix(), libraryRef));
      return runFlow(loadFlow(), input, runInProcess);
    });
    log.info(
      keep
        ? `kept ${stateDir}; to build your own VMs against its example library:\n` +
            `  . ${shellQuote(join(stateDir, "env.sh"))}\n` +
            "  nixos-closure build --vm-name vm2 --profile devel -L\n" +
            "  nixos-closure list"
        : `${stateDir} is removed now, with the config dir and the root made in it (the store paths stay until a garbage collection)`,
    );
    return { stateDir, result: keep ? run.result : withoutPathsIn(run.result, stateDir) };
  } finally {
    // The root's store files are read-only, as in any store: removeTree makes them writable first.
    if (!keep) removeTree(stateDir);
  }
}
