// A root directory whose store holds exactly one closure, laid out as
// nixos-prepare-root does (see the README, "A closure-only root"), made with
// file operations and Nix's own registration, without root powers.
//
// The root is a symlink switched atomically between generations: a new one
// is built beside the current one and the link moves only when it is
// complete, so an interrupted run keeps the last complete root and a VM
// served the previous generation keeps its files (the previous generation is
// deleted only by the run after next).
import {
  chmodSync,
  constants,
  copyFileSync,
  type Dirent,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { SetupError } from "./errors.ts";

export const STORE_DIR = "/nix/store";

/** How the files of the root's store came to be. */
export interface MaterializeStats {
  /** Files hard-linked (from the previous generation or the host store). */
  linked: number;
  /** Files copied (with a reflink where the filesystem has them). */
  copied: number;
  /** Store paths taken from the previous generation. */
  reused: number;
}

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

function canLink(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return !["EXDEV", "EPERM", "EMLINK", "EACCES", "ENOTSUP", "EOPNOTSUPP"].includes(code ?? "");
}

/** Recreates one store object at `to`: hard links where allowed, else reflinked or plain copies. */
function materialize(from: string, to: string, stats: MaterializeStats, state: { link: boolean }): void {
  const stat = lstatSync(from);
  if (stat.isSymbolicLink()) {
    symlinkSync(readlinkSync(from), to);
  } else if (stat.isDirectory()) {
    mkdirSync(to, { mode: 0o755 });
    for (const entry of readdirSync(from)) materialize(join(from, entry), join(to, entry), stats, state);
    chmodSync(to, stat.mode & 0o7777);
  } else {
    if (state.link) {
      try {
        linkSync(from, to);
        stats.linked++;
        return;
      } catch (error) {
        if (canLink(error)) throw error;
        state.link = false; // not allowed here: copy from now on
      }
    }
    copyFileSync(from, to, constants.COPYFILE_FICLONE);
    chmodSync(to, stat.mode & 0o7777);
    stats.copied++;
  }
}

/** Lays out the directories of prepare-root.md with their modes. */
export function standardDirectories(root: string): void {
  const dirs: [string, number][] = [
    ["dev", 0o755],
    ["proc", 0o755],
    ["sys", 0o755],
    ["etc", 0o755],
    ["run", 0o755],
    ["home", 0o755],
    ["tmp", 0o1777],
    ["var", 0o755],
    ["root", 0o700],
    ["bin", 0o755],
    ["nix/var/nix/gcroots", 0o755],
    ["nix/var/nix/temproots", 0o755],
    ["nix/var/nix/userpool", 0o755],
    ["nix/var/nix/profiles", 0o755],
    ["nix/var/nix/db", 0o755],
    ["nix/var/log/nix/drvs", 0o755],
    ["nix/store", 0o1775],
  ];
  for (const [dir, mode] of dirs) {
    mkdirSync(join(root, dir), { recursive: true, mode: 0o755 });
    chmodSync(join(root, dir), mode);
  }
  symlinkSync("/run", join(root, "var", "run"));
}

/** Copies the closure's store paths into `root`/nix/store, reusing the previous generation's files. */
export function populateStore(root: string, paths: readonly string[], previous: string | null): MaterializeStats {
  const stats: MaterializeStats = { linked: 0, copied: 0, reused: 0 };
  const store = join(root, "nix", "store");
  const hostState = { link: statSync(STORE_DIR).dev === statSync(store).dev };
  for (const path of paths) {
    const name = basename(path);
    const old = previous === null ? null : join(previous, "nix", "store", name);
    if (old !== null && existsSync(old)) {
      materialize(old, join(store, name), stats, { link: true });
      stats.reused++;
    } else {
      materialize(path, join(store, name), stats, hostState);
    }
  }
  return stats;
}

/** The system's links: /bin/sh from the closure, the system profile, current-system, etc/NIXOS. */
export function systemLinks(root: string, toplevel: string, closure: ReadonlySet<string>): void {
  let shell: string;
  try {
    shell = realpathSync(join(toplevel, "sw", "bin", "sh"));
  } catch {
    throw new SetupError(`${toplevel}/sw/bin/sh does not exist: the closure has no shell for /bin/sh`);
  }
  const owner = shell.split("/").slice(0, 4).join("/");
  if (!closure.has(owner)) throw new SetupError(`${toplevel}/sw/bin/sh resolves to ${shell}, which is not in the closure`);
  symlinkSync(shell, join(root, "bin", "sh"));
  const profiles = join(root, "nix", "var", "nix", "profiles");
  symlinkSync(toplevel, join(profiles, "system-1-link"));
  symlinkSync("system-1-link", join(profiles, "system"));
  symlinkSync("/nix/var/nix/profiles/system", join(root, "run", "current-system"));
  writeFileSync(join(root, "etc", "NIXOS"), "");
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
