// A throwaway worker environment: WORKERS_DIR, VENDOR_DIR with the fixture
// library (locked against the stand-in nixpkgs), and the variables the steps
// read, applied to process.env while a test runs.
import {
  cpSync,
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
import { nixSync, TEST_NIX_CONFIG, type TestNix } from "./nix.ts";

export const FIXTURES = resolve(import.meta.dirname, "..", "fixtures");

export interface Workbench {
  root: string;
  workersDir: string;
  vendorDir: string;
  systemDir: string;
  libraryDir: string;
  nixpkgsDir: string;
  env: Record<string, string>;
  /** Applies env to process.env; returns the function that restores it. */
  apply(extra?: Record<string, string>): () => void;
  cleanup(): void;
}

/** Copies the fixture library to `dir` with its nixpkgs input pointing at `nixpkgsDir`. */
export function installLibrary(dir: string, nixpkgsDir: string): void {
  cpSync(join(FIXTURES, "nixos-flake"), dir, { recursive: true });
  const flake = join(dir, "flake.nix");
  writeFileSync(flake, readFileSync(flake, "utf8").replace(`"path:@NIXPKGS@"`, `"path:${nixpkgsDir}"`));
}

export function createWorkbench(nix: TestNix | null): Workbench {
  const root = mkdtempSync(join(tmpdir(), "nixos-closure-test-"));
  const workbench = join(root, "workbench");
  const workersDir = join(workbench, "workers");
  const vendorDir = join(root, "vendor");
  const systemDir = join(workbench, "system");
  const libraryDir = join(vendorDir, "nixos-flake");
  const nixpkgsDir = join(root, "nixpkgs");
  mkdirSync(workersDir, { recursive: true });
  mkdirSync(vendorDir, { recursive: true });
  cpSync(join(FIXTURES, "nixpkgs"), nixpkgsDir, { recursive: true });
  installLibrary(libraryDir, nixpkgsDir);
  if (nix) nixSync(nix, ["flake", "lock", `path:${libraryDir}`]);
  const env: Record<string, string> = {
    WORKERS_DIR: workersDir,
    WORKER_INDEX: "0",
    VENDOR_DIR: vendorDir,
    NIX_CONFIG: TEST_NIX_CONFIG,
    HOME: "/root",
    ...(nix ? { NIX_BIN: nix.bin } : {}),
  };
  return {
    root,
    workersDir,
    vendorDir,
    systemDir,
    libraryDir,
    nixpkgsDir,
    env,
    apply(extra = {}) {
      const saved = new Map<string, string | undefined>();
      for (const [name, value] of Object.entries({ ...env, ...extra })) {
        saved.set(name, process.env[name]);
        process.env[name] = value;
      }
      return () => {
        for (const [name, value] of saved) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
      };
    },
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

/**
 * A workbench for the tests of one describe block: created before them (with
 * `extra` on top of its environment, applied to process.env), removed after.
 */
export function useWorkbench(nix: TestNix | null, extra: Record<string, string> = {}): () => Workbench {
  let wb: Workbench | undefined;
  let restore: () => void = () => {};
  before(() => {
    wb = createWorkbench(nix);
    restore = wb.apply(extra);
  });
  after(() => {
    restore();
    wb?.cleanup();
  });
  return () => {
    if (!wb) throw new Error("the workbench exists only while the tests run");
    return wb;
  };
}

/** Runs `work` with stderr captured (and still shown); returns its value or error with the text. */
export async function captureStderr<T>(
  work: () => Promise<T>,
): Promise<{ value: T | undefined; error: unknown; stderr: string }> {
  const chunks: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return write(chunk);
  }) as typeof process.stderr.write;
  try {
    return { value: await work(), error: undefined, stderr: chunks.join("") };
  } catch (error) {
    return { value: undefined, error, stderr: chunks.join("") };
  } finally {
    process.stderr.write = write;
  }
}
