// The root a host serves is a symlink switched atomically between numbered
// generations: a new one is built beside the current one and the link moves
// only when it is complete, so an interrupted run keeps the last complete
// root and a VM served the previous generation keeps its files (the previous
// generation is deleted only by the run after next).
import {
  chmodSync,
  type Dirent,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { SetupError } from "../../core/errors.ts";
import { STORE_DIR } from "./populate.ts";

export interface RootLayout {
  /** The path the host serves from: a symlink to the current generation. */
  rootDir: string;
  /** Where generations live: never inside the config dir (Nix copies that into the store). */
  generationsDir: string;
}

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

export function rootLayout(configDir: string, rootDir: string): RootLayout {
  const dir = rootDir === "" ? join(configDir, "root") : rootDir;
  if (!isAbsolute(dir)) throw new SetupError(`root_dir ${JSON.stringify(rootDir)} must be an absolute path`);
  const resolved = resolve(dir);
  if (inside(resolved, STORE_DIR)) throw new SetupError(`root_dir ${resolved} must not be inside ${STORE_DIR}`);
  const generationsDir = inside(resolved, configDir) ? `${configDir}.roots` : `${resolved}.generations`;
  return { rootDir: resolved, generationsDir };
}

/** The generation the root link points to, or null; refuses a root_dir that is not ours. */
export function currentGeneration(layout: RootLayout): string | null {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(layout.rootDir);
  } catch {
    return null;
  }
  const target = stat.isSymbolicLink() ? readlinkSync(layout.rootDir) : null;
  if (target === null || dirname(target) !== layout.generationsDir) {
    throw new SetupError(
      `root_dir ${layout.rootDir} exists and is not a root prepared here (a link into ${layout.generationsDir}); ` +
        "move it away or choose another root_dir",
    );
  }
  return existsSync(target) ? target : null;
}

/** Removes a tree even where store permissions made its directories read-only. */
export function removeTree(path: string): void {
  const makeWritable = (dir: string) => {
    let entries: Dirent[];
    try {
      chmodSync(dir, 0o755);
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) if (entry.isDirectory()) makeWritable(join(dir, entry.name));
  };
  if (!existsSync(path)) return;
  if (lstatSync(path).isDirectory()) makeWritable(path);
  rmSync(path, { recursive: true, force: true });
}

/** Points the root link at a complete generation, atomically. */
export function switchTo(layout: RootLayout, generation: string): void {
  mkdirSync(dirname(layout.rootDir), { recursive: true });
  const temporary = `${layout.rootDir}.switch-${process.pid}`;
  rmSync(temporary, { force: true });
  symlinkSync(generation, temporary);
  renameSync(temporary, layout.rootDir);
}

/** Numbered generations, oldest first; leftovers of interrupted runs (`*.partial`) removed. */
export function generations(layout: RootLayout): string[] {
  mkdirSync(layout.generationsDir, { recursive: true });
  const names = readdirSync(layout.generationsDir);
  for (const name of names.filter((n) => n.endsWith(".partial"))) removeTree(join(layout.generationsDir, name));
  return names
    .filter((n) => /^\d+$/.test(n))
    .sort((a, b) => Number(a) - Number(b))
    .map((n) => join(layout.generationsDir, n));
}

/** Deletes generations other than the current and the one before it. */
export function pruneGenerations(layout: RootLayout, keep: readonly string[]): string[] {
  const removed = generations(layout).filter((g) => !keep.includes(g));
  for (const generation of removed) removeTree(generation);
  return removed;
}
