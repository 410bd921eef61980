// A throwaway worker environment: WORKERS_DIR, VENDOR_DIR with the fixture
// library (locked against the stand-in nixpkgs), and a complete environment
// naming them, which tests hand to the steps (never through process.env, so
// worker variables set in the calling shell change nothing).
import {
  chmodSync,
  type Dirent,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before } from "node:test";
import { installExamples } from "../../cli/examples.ts";
import { nixSync, TEST_NIX_CONFIG, type TestNix } from "./nix.ts";

/** Test data: recorded Nix output. The example library and stand-in nixpkgs are in examples/ (cli/examples.ts). */
export const FIXTURES = resolve(import.meta.dirname, "..", "fixtures");

export interface Workbench {
  root: string;
  workersDir: string;
  vendorDir: string;
  systemDir: string;
  libraryDir: string;
  nixpkgsDir: string;
  /** The whole environment of the worker: what steps and spawned processes get. */
  env: Record<string, string>;
  cleanup(): void;
}

/** Every variable the steps read: a test environment sets each one, or leaves it out on purpose. */
export const WORKER_VARIABLES = [
  "WORKERS_DIR",
  "WORKER_INDEX",
  "WORKBENCH_DIR",
  "SYSTEM_DIR",
  "VENDOR_DIR",
  "NIXOS_FLAKE_DIR",
  "NIX_BIN",
  "NIX_CONFIG",
  "NIXOS_CLOSURE_LOCK_WAIT",
  "NIXOS_CLOSURE_PROGRESS",
  "NIXOS_CLOSURE_ALLOW_INPUT_KEYS",
  "XDG_STATE_HOME",
  "HOME",
];

/**
 * What node's test runner adds to a test file's environment, not the user's: FORCE_COLOR=1 whenever its report
 * goes to a colour terminal. Handed on, it would make a program under test behave otherwise on a terminal than
 * in CI (and Node print that NO_COLOR, which tests set, is ignored).
 */
const RUNNER_VARIABLES = ["FORCE_COLOR"];

/** This process's environment less every worker variable and what the test runner added: what a program under test starts from. */
export function baseEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined && !WORKER_VARIABLES.includes(entry[0]) && !RUNNER_VARIABLES.includes(entry[0]),
    ),
  );
}

/** What a workbench's stand-in nixpkgs does beyond the shipped one. */
export interface WorkbenchOptions {
  /**
   * Steps of work every evaluation of a system does (examples/nixpkgs/nixos/base.nix),
   * each evaluation then printing `trace: stand-in nixpkgs: evaluating the system of <name>`.
   */
  evaluationWork?: number;
}

/** What each evaluation of a system with a weighed stand-in prints (one line per evaluation). */
export const EVALUATION_TRACE = /trace: stand-in nixpkgs: evaluating the system of/g;

export function createWorkbench(
  nix: TestNix | null,
  extra: Record<string, string> = {},
  options: WorkbenchOptions = {},
): Workbench {
  const root = mkdtempSync(join(tmpdir(), "nixos-closure-test-"));
  // Sources made under it are copied into the store, which everyone reads: a private root would refuse them.
  chmodSync(root, 0o755);
  const workbench = join(root, "workbench");
  const workersDir = join(workbench, "workers");
  const vendorDir = join(root, "vendor");
  const systemDir = join(workbench, "system");

  mkdirSync(workersDir, { recursive: true });
  mkdirSync(vendorDir, { recursive: true });
  const { libraryDir, nixpkgsDir } = installExamples(vendorDir);
  if (options.evaluationWork !== undefined) {
    writeFileSync(
      join(nixpkgsDir, "evaluation-weight.json"),
      `${JSON.stringify({ work: options.evaluationWork, trace: true })}\n`,
    );
  }
  if (nix) nixSync(nix, ["flake", "lock", `path:${libraryDir}`]);
  const env: Record<string, string> = {
    ...baseEnv(),
    WORKERS_DIR: workersDir,
    WORKER_INDEX: "0",
    WORKBENCH_DIR: workbench,
    SYSTEM_DIR: systemDir,
    VENDOR_DIR: vendorDir,
    NIXOS_FLAKE_DIR: libraryDir,
    NIX_BIN: nix ? nix.bin : join(root, "no-nix"),
    NIX_CONFIG: TEST_NIX_CONFIG,
    HOME: "/root",
    ...extra,
  };
  return {
    root,
    workersDir,
    vendorDir,
    systemDir,
    libraryDir,
    nixpkgsDir,
    env,
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A snapshot of every file under a directory (path -> content), to prove nothing changed. */
export function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.set(p, e.isSymbolicLink() ? `-> ${readlinkSync(p)}` : readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return files;
}

/** A workbench for the tests of one describe block (with `extra` in its environment): created before them, removed after. */
export function useWorkbench(
  nix: TestNix | null,
  extra: Record<string, string> = {},
  options: WorkbenchOptions = {},
): () => Workbench {
  let wb: Workbench | undefined;
  before(() => {
    wb = createWorkbench(nix, extra, options);
  });
  after(() => wb?.cleanup());
  return () => {
    if (!wb) throw new Error("the workbench exists only while the tests run");
    return wb;
  };
}
