// The root a host serves is a symlink switched atomically between numbered
// generations: a new one is built beside the current one and the link moves
// only when it is complete, so an interrupted run keeps the last complete
// root and a VM served the previous generation keeps its files (the previous
// generation is deleted only by the run after next).
//
// Each root owns its generations directory, which carries a marker naming
// the root and the VM's config dir. Nothing is pruned, or even created,
// unless the marker says the directory is this root's and the directory and
// marker are the running user's, which nobody else may write: a directory
// that is not ours, or another VM's root, is refused untouched. So is a place
// where another user could swap a directory on the way for a link.
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  type Stats,
  symlinkSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { InputError, SetupError } from "../../core/errors.ts";
import {
  entryAt,
  fileSystemMessage,
  isFileSystemError,
  makeDirs,
  modeOf,
  readCache,
  readIfExists,
  realPathOf,
  redirectable,
  unsafePlace,
  WRITABLE_BY_OTHERS,
  writeFileAtomic,
  writeRecord,
} from "../../core/files.ts";
import { runningUid } from "../../core/process.ts";
import { STORE_DIR } from "./populate.ts";

export interface RootLayout {
  /** The path the host serves from: a symlink to the current generation. By its real place (links above it resolved). */
  rootDir: string;
  /** This root's generations: never inside the config dir (Nix copies that into the store). */
  generationsDir: string;
  /** The config dir of the VM the root belongs to. */
  configDir: string;
  /**
   * The directory whose lock (`<lockDir>.lock`) guards the root: the root
   * itself, beside which the lock sits; for a root inside the config dir,
   * the config dir, whose lock the step holds anyway (no other VM may put
   * a root there), so that no lock file of it sits inside the flake source.
   */
  lockDir: string;
}

/** Nix's state and logs: its database, GC roots (a root there would hold the host's store paths), profiles. */
const NIX_STATE_DIR = "/nix/var";

/** The file in a generations directory that makes it ours. */
const MARKER = ".nixos-closure-root";

/** Why an entry is not the running user's own (another user's, or one others may write), or null when it is. */
function notOurs(stat: Stats): string | null {
  const uid = runningUid();
  if (stat.uid !== uid) return `belongs to uid ${stat.uid}, not to uid ${uid}, which runs this step`;
  // A link's own mode means nothing: what counts is who may replace it, the directory's writers.
  if (!stat.isSymbolicLink() && (stat.mode & WRITABLE_BY_OTHERS) !== 0) return `may be written by others (mode ${modeOf(stat)})`;
  return null;
}

interface Marker {
  root_dir: string;
  config_dir: string;
}

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Where a root is, whatever links lead there: its parent's real path and its name (the root itself is our link). */
function placeOf(path: string): string {
  return join(realPathOf(dirname(path)), basename(path));
}

/**
 * Where a root and its generations live; `rootDir` as given (empty:
 * `<config_dir>/root`), by its real place: a root reached through a link is
 * the root it lands on, with that root's generations and lock.
 */
export function rootLayout(configDir: string, rootDir: unknown): RootLayout {
  if (typeof rootDir !== "string") throw new InputError("root_dir", rootDir, "must be a string: an absolute path, or empty");
  const dir = rootDir === "" ? join(configDir, "root") : rootDir;
  if (!isAbsolute(dir)) throw new InputError("root_dir", rootDir, "must be an absolute path");
  if (dir.includes("\0")) throw new InputError("root_dir", rootDir, "must not contain a NUL character");
  const given = resolve(dir);
  // A link on the way that another user may repoint, or a directory they could swap, would take the root elsewhere.
  const redirect = redirectable(dirname(given));
  if (redirect !== null) {
    throw new InputError(
      "root_dir",
      rootDir,
      `is in no safe place: ${redirect}, so another user could make it lead elsewhere; nothing was changed: ` +
        "choose a place that only you and root may write",
    );
  }
  const resolved = placeOf(given);
  // Nix's own places, by real path too: a root in the store, or among Nix's state (its GC roots, profiles, database).
  for (const nixDir of [STORE_DIR, NIX_STATE_DIR]) {
    if (inside(given, nixDir) || inside(resolved, nixDir)) {
      throw new InputError("root_dir", rootDir, `must not be inside ${nixDir}${nixDir === STORE_DIR ? "" : ", Nix's state"}`);
    }
  }
  if (resolved === "/" || resolved === configDir || inside(configDir, resolved)) {
    throw new InputError("root_dir", rootDir, `must not be the config dir ${configDir} or hold it`);
  }
  // A directory in the config dir is copied into the store by every build, and makes every build evaluate again.
  if (inside(resolved, configDir) && dirname(resolved) !== configDir) {
    throw new InputError(
      "root_dir",
      rootDir,
      `must be directly in the config dir (${configDir}/<name>) or outside it: a directory made in it would be copied into the store by every build`,
    );
  }
  // Nix takes the root's generations as a store URI (local?root=...): only characters no URI can misread.
  if (!/^\/[A-Za-z0-9/._~+@,=-]*$/.test(resolved)) {
    throw new InputError(
      "root_dir",
      rootDir,
      `may hold only letters, digits and / . _ ~ + @ , = - (its real path is ${resolved})`,
    );
  }
  // Under WORKERS_DIR live the VMs' config dirs, locks and roots, of every slot: a root there could take one's
  // place. Compared by real paths too, so that no link leads there.
  const workersDir = dirname(dirname(dirname(configDir)));
  if ((inside(given, workersDir) || inside(resolved, realPathOf(workersDir))) && !inside(resolved, configDir)) {
    throw new InputError(
      "root_dir",
      rootDir,
      `must not be in ${workersDir}, where the VMs' config dirs live, unless inside this VM's`,
    );
  }
  const generation = markedAncestor(resolved);
  if (generation !== null) {
    throw new InputError("root_dir", rootDir, `is inside ${generation}, the generations of a prepared root, which are pruned`);
  }
  return placedLayout(configDir, resolved);
}

/** The layout of a root at its real place `rootDir`. */
function placedLayout(configDir: string, rootDir: string): RootLayout {
  // Roots inside the config dir keep their generations beside it, one directory per root, by the root's name:
  // Nix takes the generations as a store URI, whose %-escapes it decodes, so the name is never escaped. Only
  // earlier versions made roots deeper in the config dir: their generations, named escaped, are found to be removed.
  if (inside(rootDir, configDir)) {
    const name = relative(configDir, rootDir);
    const generationsDir = join(`${configDir}.roots`, name.includes("/") ? encodeURIComponent(name) : name);
    return { rootDir, generationsDir, configDir, lockDir: configDir };
  }
  return { rootDir, generationsDir: `${rootDir}.generations`, configDir, lockDir: rootDir };
}

/** Where the roots a VM prepared are recorded: beside its config dir, marked as ours. */
export function rootsRecordOf(configDir: string): string {
  return `${configDir}.roots.json`;
}

function recordedRootDirs(configDir: string): string[] {
  const roots = readCache(rootsRecordOf(configDir))?.roots;
  return Array.isArray(roots) ? roots.filter((root): root is string => typeof root === "string" && isAbsolute(root)) : [];
}

/**
 * Adds the root to its VM's record of prepared roots, before anything of it
 * is made: list and remove then find every root a VM prepared, wherever it is.
 */
export function recordRoot(layout: RootLayout): void {
  const roots = recordedRootDirs(layout.configDir);
  if (!roots.includes(layout.rootDir)) writeRecord(rootsRecordOf(layout.configDir), { roots: [...roots, layout.rootDir] });
}

/**
 * The roots a VM prepared whose generations are still there and carry its
 * marker: those it recorded, and those inside its config dir (found beside
 * it, as earlier versions recorded none).
 */
export function preparedRootsOf(configDir: string): RootLayout[] {
  const found = new Map<string, RootLayout>();
  for (const root of recordedRootDirs(configDir)) {
    const layout = placedLayout(configDir, root);
    found.set(layout.generationsDir, layout);
  }
  const beside = `${configDir}.roots`;
  for (const name of lstatSync(beside, { throwIfNoEntry: false })?.isDirectory() ? readdirSync(beside) : []) {
    const rootDir = ourMarker(join(beside, name))?.root_dir;
    if (rootDir !== undefined && isAbsolute(rootDir))
      found.set(join(beside, name), { ...placedLayout(configDir, placeOf(rootDir)), generationsDir: join(beside, name) });
  }
  return [...found.values()].filter((layout) => isMarkedFor(layout));
}

/** The marker of a generations directory when the directory and the marker are ours (the running user's, written by nobody else), else null. */
function ourMarker(generationsDir: string): Marker | null {
  const dir = entryAt(generationsDir);
  if (!dir?.isDirectory() || notOurs(dir) !== null) return null;
  const marker = entryAt(join(generationsDir, MARKER));
  if (!marker?.isFile() || notOurs(marker) !== null) return null;
  return readMarker(generationsDir);
}

/** Whether the root's generations directory is there, a real directory of ours, with our marker naming this root and VM. */
function isMarkedFor(layout: RootLayout): boolean {
  const marker = ourMarker(layout.generationsDir);
  return (
    marker !== null &&
    placeOf(marker.root_dir) === layout.rootDir &&
    realPathOf(marker.config_dir) === realPathOf(layout.configDir)
  );
}

/** The root's link when it is ours (a link of the running user's into its generations), else null. */
function rootLink(layout: RootLayout): string | null {
  const stat = entryAt(layout.rootDir);
  if (!stat?.isSymbolicLink() || stat.uid !== runningUid()) return null;
  return realPathOf(dirname(readlinkSync(layout.rootDir))) === realPathOf(layout.generationsDir) ? layout.rootDir : null;
}

/** What removing the root takes: its link, if ours, and its generations directory. */
export function rootFiles(layout: RootLayout): string[] {
  return [rootLink(layout), layout.generationsDir].filter((path): path is string => path !== null);
}

/**
 * Removes a root of a VM being removed, under the root's lock: its link
 * (only a link into its generations), what killed switches left, and its
 * generations (only with the marker naming it and the VM).
 */
export function removeRoot(layout: RootLayout): void {
  const link = rootLink(layout);
  if (link !== null) rmSync(link, { force: true });
  removeSwitchLeftovers(layout);
  if (!isMarkedFor(layout)) return;
  // The marker goes last: a removal stopped midway leaves generations still known as this VM's, to finish.
  for (const name of readdirSync(layout.generationsDir)) {
    if (name !== MARKER) removeTree(join(layout.generationsDir, name));
  }
  rmSync(join(layout.generationsDir, MARKER), { force: true });
  rmdirSync(layout.generationsDir);
}

/**
 * Why a path a user names (a root, a store to publish to) may not be
 * written: it is under WORKERS_DIR, where the VMs' files live, or inside a
 * prepared root's generations; null when neither. By real path too, so that
 * no link leads there.
 */
export function reservedPlace(path: string, workersDir: string): string | null {
  const resolved = resolve(path);
  const real = join(realPathOf(dirname(resolved)), basename(resolved));
  if (inside(resolved, workersDir) || inside(real, realPathOf(workersDir))) {
    return `is in ${workersDir}, where the VMs' config dirs live`;
  }
  const generation = markedAncestor(resolved);
  return generation === null ? null : `is inside ${generation}, the generations of a prepared root`;
}

/** The nearest directory above `path` (following links, as the file system will) that is a generations directory of ours. */
function markedAncestor(path: string): string | null {
  // The root itself may be our link into its generations: look from its parent.
  let existing = dirname(path);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  for (const start of new Set([dirname(path), realpathSync(existing)])) {
    for (let dir = start; ; dir = dirname(dir)) {
      if (existsSync(join(dir, MARKER))) return dir;
      if (dirname(dir) === dir) break;
    }
  }
  return null;
}

function readMarker(generationsDir: string): Marker | null {
  try {
    const marker = JSON.parse(readIfExists(join(generationsDir, MARKER)) ?? "null") as Marker | null;
    return typeof marker?.root_dir === "string" && typeof marker.config_dir === "string" ? marker : null;
  } catch {
    return null;
  }
}

/** Refuses a root whose place (the directories down to its link and its generations) is no safe place. */
function checkPlace(layout: RootLayout): void {
  for (const dir of new Set([dirname(layout.rootDir), dirname(layout.generationsDir)])) {
    const why = unsafePlace(dir);
    if (why !== null) {
      throw new InputError(
        "root_dir",
        layout.rootDir,
        `is in no safe place: ${why}, so another user could swap a directory of the root for a link to theirs; ` +
          "nothing was changed: choose a place that only you and root may write",
      );
    }
  }
}

/**
 * Makes the directories down to `dir`, a place of the root's, those missing
 * 0755 whatever the umask (so that they stay a safe place), and checks the
 * place again: a directory another user made first on the way (where others
 * may make entries) is refused.
 */
function makeSafeDirs(dir: string, layout: RootLayout): void {
  const missing: string[] = [];
  for (let at = dir; entryAt(at) === undefined && dirname(at) !== at; at = dirname(at)) missing.push(at);
  makeDirs(dir);
  for (const made of missing) {
    const stat = entryAt(made);
    if (stat?.isDirectory() && stat.uid === runningUid()) chmodSync(made, 0o755);
  }
  checkPlace(layout);
}

/** Makes the directory the root's lock goes in (before the lock is taken), as a safe place. */
export function makeLockPlace(layout: RootLayout): void {
  makeSafeDirs(dirname(layout.lockDir), layout);
}

/**
 * Checks that the root and its generations are this root's (or not there
 * yet) and returns the current generation, or null. Refuses (InputError),
 * changing nothing: a place where another user could swap a directory for a
 * link, a root_dir that is not a link of ours into its generations, a
 * generations directory or marker that is not ours (another user's, one
 * others may write, or one without our marker), and another VM's root.
 */
export function currentGeneration(layout: RootLayout): string | null {
  const { rootDir, generationsDir } = layout;
  const refuse = (why: string) => new InputError("root_dir", rootDir, why);
  checkPlace(layout);
  let target: string | null = null;
  const link = entryAt(rootDir);
  if (link !== undefined) {
    // Whose it is first: another user's link is not followed, even to compare.
    if (link.isSymbolicLink() && link.uid !== runningUid()) {
      throw refuse(`is a link that is not ours: it ${notOurs(link)}; nothing was changed: choose another root_dir`);
    }
    target = link.isSymbolicLink() ? readlinkSync(rootDir) : null;
    // By real paths: a root switched when it was named through a link points into the same generations.
    if (target === null || realPathOf(dirname(target)) !== realPathOf(generationsDir)) {
      throw refuse(
        `exists and is not a root prepared here (a link into ${generationsDir}); ` +
          "nothing was changed: move it away or choose another root_dir",
      );
    }
  }
  const generations = entryAt(generationsDir);
  if (generations !== undefined) {
    const notOursWhy = generations.isDirectory() ? notOurs(generations) : "is not a directory";
    if (notOursWhy !== null) {
      throw refuse(
        `cannot use ${generationsDir}, its generations: it ${notOursWhy}; ` +
          "nothing in it was touched: move it away or choose another root_dir",
      );
    }
    const markerPath = join(generationsDir, MARKER);
    const markerStat = entryAt(markerPath);
    // Empty and ours, without a marker: the first run was stopped right after making it, and claims it again.
    if (markerStat === undefined && target === null && readdirSync(generationsDir).length === 0) return null;
    if (markerStat !== undefined) {
      const markerWhy = markerStat.isFile() ? notOurs(markerStat) : "is not a regular file";
      if (markerWhy !== null) {
        throw refuse(
          `cannot use ${generationsDir}, its generations: its marker ${markerPath} ${markerWhy}; ` +
            "nothing in it was touched: move it away or choose another root_dir",
        );
      }
    }
    const marker = readMarker(generationsDir);
    if (marker === null) {
      throw refuse(
        `cannot use ${generationsDir}, its generations: it exists but was not made by nixos-closure (it has no ${MARKER}); ` +
          "nothing in it was touched: move it away or choose another root_dir",
      );
    }
    if (placeOf(marker.root_dir) !== rootDir || realPathOf(marker.config_dir) !== realPathOf(layout.configDir)) {
      throw refuse(
        `is the root of another VM (config dir ${marker.config_dir}); nothing was changed: give this VM a root_dir of its own`,
      );
    }
  } else if (target !== null) {
    throw new SetupError(`root_dir ${rootDir} points into ${generationsDir}, which is gone; remove the link ${rootDir}`);
  }
  // Spelt as this root's generations are, so that pruning knows it for the current one.
  return target !== null && existsSync(target) ? join(generationsDir, basename(target)) : null;
}

/**
 * Makes the generations directory, ours by its marker, when it is not there
 * yet (or was left empty by a run stopped before its marker): 0755, whatever
 * the umask. Made in place, never renamed into place: where others may make
 * entries (a sticky directory), a name another user took meanwhile fails
 * this (EEXIST) and is never replaced. Made by this run and then failed (a
 * full disk), it is removed again.
 */
export function claimGenerations(layout: RootLayout): void {
  const { generationsDir } = layout;
  let made = false;
  if (entryAt(generationsDir) === undefined) {
    makeSafeDirs(dirname(generationsDir), layout);
    mkdirSync(generationsDir, { mode: 0o755 });
    made = true;
  }
  if (ourMarker(generationsDir) !== null) return;
  try {
    chmodSync(generationsDir, 0o755);
    const marker: Marker = { root_dir: layout.rootDir, config_dir: layout.configDir };
    writeFileAtomic(join(generationsDir, MARKER), `${JSON.stringify(marker)}\n`);
  } catch (error) {
    if (made) {
      try {
        rmdirSync(generationsDir);
      } catch {} // left, empty, for the next run to claim
    }
    throw error;
  }
}

/** Directories nested deeper than this are not removed: each level holds a descriptor while it is emptied. */
const MAX_REMOVE_DEPTH = 512;
/** How often an entry that changed while it was removed (filled again, swapped for a link) is looked at again. */
const REMOVE_ATTEMPTS = 5;

/** An entry of the directory open as `fd`, by that descriptor: the name is looked up in that very directory, never from the top. */
const entryOf = (fd: number, name: string) => `/proc/self/fd/${fd}/${name}`;

/** Empties the directory open as `fd` (found at `where`), made writable first when it is ours and read-only (a store path's). */
function emptyDirectory(fd: number, where: string, depth: number): void {
  if (depth > MAX_REMOVE_DEPTH)
    throw new SetupError(`cannot remove ${where}: it nests more than ${MAX_REMOVE_DEPTH} directories deep`);
  const stat = fstatSync(fd);
  if (stat.uid === process.getuid?.() && (stat.mode & 0o700) !== 0o700) fchmodSync(fd, (stat.mode & 0o7777) | 0o700);
  for (const name of readdirSync(`/proc/self/fd/${fd}`)) removeEntry(fd, name, join(where, name), depth);
}

/**
 * Removes the entry `name` of the directory open as `dirFd`. A directory is
 * opened with O_NOFOLLOW and emptied through its descriptor; anything else,
 * a link included, is unlinked (never followed).
 */
function removeEntry(dirFd: number, name: string, where: string, depth: number): void {
  const path = entryOf(dirFd, name);
  for (let attempt = 1; ; attempt++) {
    try {
      try {
        unlinkSync(path);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EISDIR") throw error;
      }
      const child = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        emptyDirectory(child, where, depth + 1);
      } finally {
        closeSync(child);
      }
      rmdirSync(path);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      // Changed since it was looked at (others may write in tmp/): a directory swapped for a link or a file, or filled again.
      if (attempt < REMOVE_ATTEMPTS && (code === "ELOOP" || code === "ENOTDIR" || code === "ENOTEMPTY")) continue;
      if (isFileSystemError(error) && error.path?.startsWith("/proc/self/fd/")) error.path = where;
      throw error;
    }
  }
}

/**
 * Removes a tree, even where store permissions made its directories
 * read-only, without ever following a link or looking a name up again from
 * the top: a generation holds tmp/ (mode 1777), where any local user may
 * swap a directory for a link to their target between two of our calls.
 */
export function removeTree(path: string): void {
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return;
  const parent = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    removeEntry(parent, basename(path), path, 0);
  } finally {
    closeSync(parent);
  }
}

/**
 * Points the root link at a complete generation, atomically; removes what
 * killed runs left of their switches. The first link is made in place, so
 * that a name another user took meanwhile (in a sticky directory) fails this
 * and is never replaced; only our own link is replaced.
 */
export function switchTo(layout: RootLayout, generation: string): void {
  makeDirs(dirname(layout.rootDir));
  removeSwitchLeftovers(layout);
  if (rootLink(layout) === null) {
    symlinkSync(generation, layout.rootDir);
    return;
  }
  const temporary = `${layout.rootDir}.switch-${process.pid}`;
  symlinkSync(generation, temporary);
  renameSync(temporary, layout.rootDir);
}

/** Removes the links killed switches left beside the root (only links into its generations). */
function removeSwitchLeftovers(layout: RootLayout): void {
  if (!existsSync(dirname(layout.rootDir))) return;
  const prefix = `${basename(layout.rootDir)}.switch-`;
  for (const name of readdirSync(dirname(layout.rootDir)).filter(
    (n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)),
  )) {
    // Only our own leftovers: links of the running user's into this root's generations.
    const leftover = join(dirname(layout.rootDir), name);
    if (entryAt(leftover)?.uid !== runningUid()) continue;
    let target: string | null = null;
    try {
      target = readlinkSync(leftover);
    } catch {}
    if (target !== null && dirname(target) === layout.generationsDir) rmSync(leftover, { force: true });
  }
}

/** The real directory of a generation, with no symlink on its path: what Nix takes as a store root. */
export function generationDir(generation: string): string {
  return realpathSync(generation);
}

/** Numbered generations, oldest first. */
export function generations(layout: RootLayout): string[] {
  return readdirSync(layout.generationsDir)
    .filter((n) => /^\d+$/.test(n))
    .sort((a, b) => Number(a) - Number(b))
    .map((n) => join(layout.generationsDir, n));
}

/** The number of the next generation: past every generation and every leftover of an interrupted run. */
export function nextGeneration(layout: RootLayout): number {
  const numbers = readdirSync(layout.generationsDir).flatMap((n) => /^(\d+)(?:\.partial)?$/.exec(n)?.[1] ?? []);
  return Math.max(0, ...numbers.map(Number)) + 1;
}

/** What could not be removed, and why. */
export interface NotRemoved {
  path: string;
  why: string;
}

function tryRemove(path: string, failed: NotRemoved[]): boolean {
  try {
    removeTree(path);
    return true;
  } catch (error) {
    failed.push({ path, why: isFileSystemError(error) ? fileSystemMessage(error) : (error as Error).message });
    return false;
  }
}

/**
 * Removes what interrupted runs left (`*.partial`). A leftover that cannot
 * be removed (a file others made undeletable in its tmp/) does not stop a
 * run: it is reported, its number skipped, and tried again by the next run.
 */
export function removeLeftovers(layout: RootLayout): NotRemoved[] {
  const failed: NotRemoved[] = [];
  for (const name of readdirSync(layout.generationsDir).filter((n) => /^\d+\.partial$/.test(n))) {
    tryRemove(join(layout.generationsDir, name), failed);
  }
  return failed;
}

/**
 * Deletes this root's generations other than those kept (the current one
 * and the one before it). Run once the root has switched, so it never fails
 * the run: what could not be removed is reported, and tried again next time.
 */
export function pruneGenerations(layout: RootLayout, keep: readonly string[]): { removed: string[]; failed: NotRemoved[] } {
  const failed: NotRemoved[] = [];
  const removed = generations(layout).filter((g) => !keep.includes(g) && tryRemove(g, failed));
  return { removed, failed };
}
