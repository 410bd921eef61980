// File operations on paths a user may have chosen: writes that never leave
// a half-written file behind, directories made one level at a time (Node's
// recursive mkdir loops forever under /proc), and errors that say what failed
// on which path instead of a stack trace.
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { SetupError } from "./errors.ts";
import { runningUid } from "./process.ts";

const ERRNO_MEANINGS: Record<string, string> = {
  ENOSPC: "no space left on the device",
  EDQUOT: "the disk quota is exhausted",
  EROFS: "the file system is read-only",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENAMETOOLONG: "a file name is too long",
  ELOOP: "too many levels of symbolic links",
  ENOTDIR: "a part of the path is not a directory",
  EISDIR: "it is a directory",
  ENOENT: "no such file or directory",
  EEXIST: "it already exists",
  EXDEV: "it is on another file system",
  EIO: "an input/output error",
};

/** Whether an error is one of Node's file-system errors (an errno code and the call that failed). */
export function isFileSystemError(error: unknown): error is NodeJS.ErrnoException & { code: string; syscall: string } {
  const e = error as NodeJS.ErrnoException | null;
  return typeof e?.code === "string" && typeof e.syscall === "string" && /^E[A-Z]+$/.test(e.code);
}

/** `cannot mkdir /x: the file system is read-only (EROFS)`: what an operator can act on. */
export function fileSystemMessage(error: NodeJS.ErrnoException & { code: string; syscall: string }): string {
  const dest = (error as { dest?: string }).dest;
  const where = error.path ? ` ${error.path}${dest ? ` -> ${dest}` : ""}` : "";
  const meaning = ERRNO_MEANINGS[error.code] ?? error.message.replace(/,.*$/, "");
  return `cannot ${error.syscall}${where}: ${meaning} (${error.code})`;
}

/**
 * The real path of `path`, which need not exist yet: its nearest existing
 * ancestor's real path (every link resolved) with the rest appended. One
 * spelling per place, whatever links lead there (a home under /home that
 * is a link, a WORKERS_DIR that is one): what locks, records and
 * comparisons use.
 */
export function realPathOf(path: string): string {
  let existing = resolve(path);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  return join(realpathSync(existing), relative(existing, resolve(path)));
}

/** Mode bits that let the group or others write. */
export const WRITABLE_BY_OTHERS = 0o022;
/** The sticky bit: in such a directory others may make entries, but not move or remove ours. */
export const STICKY = 0o1000;

export function modeOf(stat: Stats): string {
  return (stat.mode & 0o7777).toString(8).padStart(4, "0");
}

/** What is at `path` (not following a last link), or undefined when nothing can be found there. */
export function entryAt(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * Why the directories down to `dir` (a real path) are no place to make a
 * root in, or null. Another user who owns one of them, or may write one
 * without the sticky bit, could swap what lies below it for a link to a place
 * of theirs between our check and our write. So each must belong to root or
 * to the running user, and others may write one only with the sticky bit (as
 * /tmp): there they cannot move or remove what we made, and what they make
 * first under a root's names (its link, generations, lock) is refused as not
 * ours. Directories not made yet will be ours; a link on the way (one that
 * could not be resolved) is refused.
 */
export function unsafePlace(dir: string, uid = runningUid()): string | null {
  const parts = dir.split("/").filter((part) => part !== "");
  for (let depth = 0; depth <= parts.length; depth++) {
    const path = `/${parts.slice(0, depth).join("/")}`;
    const stat = entryAt(path);
    // Not there (made by us later), or not to be looked at (a name too long): making it fails with its own message.
    if (stat === undefined) return null;
    if (stat.isSymbolicLink()) return `${path} is a link that leads nowhere`;
    if (!stat.isDirectory()) return null;
    if (stat.uid !== 0 && stat.uid !== uid)
      return `${path} belongs to uid ${stat.uid}, neither root nor uid ${uid}, which runs this step`;
    if ((stat.mode & WRITABLE_BY_OTHERS) !== 0 && (stat.mode & STICKY) === 0) {
      return `others may write ${path} (mode ${modeOf(stat)}, without the sticky bit)`;
    }
  }
  return null;
}

/**
 * Why another user could make `path` lead elsewhere between a check and a
 * use, or null: a link on the way as it is written must be root's or the
 * running user's (another user may repoint theirs at will), and every
 * directory it leads through must be a safe place (`unsafePlace`).
 */
export function redirectable(path: string, uid = runningUid()): string | null {
  const parts = resolve(path)
    .split("/")
    .filter((part) => part !== "");
  for (let depth = 1; depth <= parts.length; depth++) {
    const at = `/${parts.slice(0, depth).join("/")}`;
    const stat = entryAt(at);
    if (stat === undefined) break;
    if (stat.isSymbolicLink() && stat.uid !== 0 && stat.uid !== uid)
      return `${at} is a link of uid ${stat.uid}, neither root nor uid ${uid}, which runs this step`;
  }
  return unsafePlace(realPathOf(path), uid);
}

/** At most this many directories are made for one path. */
const MAX_DEPTH = 64;

/**
 * `mkdir -p`, one level at a time: each step fails at once with a clear
 * SetupError (Node's recursive mkdir spins forever on some paths, /proc/self/x).
 */
export function makeDirs(path: string, mode = 0o755): void {
  const missing: string[] = [];
  let dir = resolve(path);
  for (;;) {
    try {
      mkdirSync(dir, { mode });
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST") break;
      if (code !== "ENOENT" || dirname(dir) === dir || missing.length >= MAX_DEPTH) {
        throw new SetupError(`cannot make the directory ${path}: ${fileSystemMessage(error as never)}`);
      }
      missing.push(dir);
      dir = dirname(dir);
    }
  }
  for (const child of missing.reverse()) {
    try {
      mkdirSync(child, { mode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new SetupError(`cannot make the directory ${path}: ${fileSystemMessage(error as never)}`);
      }
    }
  }
}

/** Entries a tree may hold before the look for private ones gives up (a large kernel tree has about 100,000). */
const MAX_TREE_ENTRIES = 2_000_000;

/** The first directory above `path` that others may not enter, or null. */
export function hiddenAncestor(path: string): string | null {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return dir;
    if (dirname(dir) === dir) return null;
  }
}

/** A part of a tree others may not read (or enter), and the user who owns it. */
export interface PrivatePart {
  path: string;
  uid: number;
}

/** What Nix would copy of a tree into the store, which everyone can read. */
export interface TreeSurvey {
  /**
   * The directories above it others may not enter, and the directories in it
   * they may not list and files they may not read: up to the first owned by
   * someone other than the user who may publish them (see `surveyTree`).
   */
  private: PrivatePart[];
  /** Bytes of its files (and links), and how many there are. */
  bytes: number;
  files: number;
}

/**
 * Surveys `root` as Nix would copy it into the store: a private file named as
 * a source must not leak that way, and neither may a readable file under a
 * private directory. `files` (paths relative to `root`: what git tracks)
 * limits the look to them and their directories; else the whole tree. The
 * look goes on past the private parts of `uid`, the user about to publish
 * them, unless that is root (see `forbiddenPart`), and stops at any other.
 */
export function surveyTree(given: string, options: { uid: number | null; files?: readonly string[] }): TreeSurvey {
  // A link is looked at where it leads, as Nix copies that: the real path's directories and tree.
  const root = realpathSync(given);
  const survey: TreeSurvey = { private: [], bytes: 0, files: 0 };
  /** Records a private part; false when the look stops there. */
  const isPrivate = (path: string, uid: number): boolean => {
    survey.private.push({ path, uid });
    return options.uid !== null && options.uid !== 0 && uid === options.uid;
  };
  for (let dir = dirname(root); ; dir = dirname(dir)) {
    const stat = statSync(dir);
    if ((stat.mode & 0o001) === 0 && !isPrivate(dir, stat.uid)) return survey;
    if (dirname(dir) === dir) break;
  }
  /** A directory others may list and enter (or one gone since git listed it); else whether the look goes on. */
  const listable = (dir: string): boolean => {
    const stat = lstatSync(dir, { throwIfNoEntry: false });
    return stat === undefined || (stat.mode & 0o005) === 0o005 || isPrivate(dir, stat.uid);
  };
  /** Counts a file; false when the look stops at it. */
  const file = (path: string): boolean => {
    const stat = lstatSync(path, { throwIfNoEntry: false });
    if (stat === undefined || stat.isDirectory()) return true; // deleted since git listed it, or a submodule's root
    survey.bytes += stat.size;
    survey.files++;
    return !stat.isFile() || (stat.mode & 0o004) !== 0 || isPrivate(path, stat.uid);
  };
  if (!listable(root)) return survey;
  if (options.files !== undefined) {
    const listed = new Set<string>([root]);
    for (const name of options.files.slice(0, MAX_TREE_ENTRIES)) {
      const path = join(root, name);
      for (let dir = dirname(path); !listed.has(dir) && dir.startsWith(root); dir = dirname(dir)) {
        listed.add(dir);
        if (!listable(dir)) return survey;
      }
      if (!file(path)) return survey;
    }
    return survey;
  }
  const pending = [root];
  let seen = 0;
  while (pending.length > 0 && seen < MAX_TREE_ENTRIES) {
    const dir = pending.pop() as string;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      seen++;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!listable(path)) return survey;
        pending.push(path);
      } else if (!file(path)) return survey;
    }
  }
  return survey;
}

/** The first directory above `root`, or file or directory in it, that others may not read (or enter), or null. */
export function privatePath(root: string): string | null {
  return surveyTree(root, { uid: null }).private[0]?.path ?? null;
}

/**
 * The private part that keeps a surveyed tree out of the store, or null. A
 * user may publish their own files, as `nix build` of their own tree does;
 * root may not (a form must not make a worker publish what its user may not
 * read), and nobody may publish what someone else keeps private.
 */
export function forbiddenPart(survey: TreeSurvey, uid: number): PrivatePart | null {
  if (uid === 0) return survey.private[0] ?? null;
  return survey.private.find((part) => part.uid !== uid) ?? null;
}

/** The warning for a tree whose private parts are all the user's own, or null when it has none. */
export function publishedPrivately(subject: string, root: string, survey: TreeSurvey): string | null {
  const [first, ...more] = survey.private;
  if (first === undefined) return null;
  const others = more.length === 0 ? "" : ` (and ${more.length} more private ${more.length === 1 ? "part" : "parts"})`;
  return (
    `${subject}: the copy of ${root} becomes readable by every user of this machine in /nix/store, ` +
    `though only you may read ${first.path}${others}`
  );
}

/** Flake files, lock files, templates: a file of ours or of the library, never larger than this. */
export const MAX_NIX_FILE_BYTES = 4 * 1024 * 1024;

/** Linux's O_PATH (its value on x86 and arm): a descriptor that names a file without opening it. */
const O_PATH = 0o10000000;

/** A file we did not write that is not read: why, in words that never quote its content. */
export class FileRefused extends SetupError {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path} ${reason}`);
  }
}

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return "a directory";
  if (stat.isSymbolicLink()) return "a symbolic link";
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isSocket()) return "a socket";
  return "a device";
}

/** A regular file opened for reading: its descriptor, what it was when opened, and where it is (every link followed). */
export interface OpenedFile {
  fd: number;
  stat: Stats;
  realPath: string;
}

export interface OpenOptions {
  /** Follow a link at the path's end (links above it are always followed, and show in realPath). Default true. */
  follow?: boolean;
  /** The directory the file must be in once every link is followed. */
  within?: string;
  maxBytes?: number;
}

/**
 * Opens a file we did not write, for reading, never waiting and never
 * running a device's open: the path is first taken as a name only (O_PATH),
 * checked (a regular file, where it must be, not too large), and only then
 * opened, through that very name, so nothing swapped in between is read.
 * Throws FileRefused, or Node's error when the path cannot be reached.
 */
export function openFile(path: string, options: OpenOptions = {}): OpenedFile {
  const handle = openSync(path, O_PATH | (options.follow === false ? constants.O_NOFOLLOW : 0));
  try {
    const stat = fstatSync(handle);
    const realPath = readlinkSync(`/proc/self/fd/${handle}`);
    if (options.within !== undefined) {
      const within = realpathSync(options.within);
      const rel = relative(within, realPath);
      if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
        throw new FileRefused(path, `leads to ${realPath}, outside ${options.within}, the only place it is read from`);
      }
    }
    if (!stat.isFile()) throw new FileRefused(path, `is not a regular file (it is ${kindOf(stat)})`);
    if (options.maxBytes !== undefined && stat.size > options.maxBytes) {
      throw new FileRefused(path, `is ${stat.size} bytes, more than the ${options.maxBytes} expected`);
    }
    const fd = openSync(`/proc/self/fd/${handle}`, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    return { fd, stat, realPath };
  } finally {
    closeSync(handle);
  }
}

/** Reads what an opened file held when opened (at most its size then). */
function readOpened(file: OpenedFile): string {
  const buffer = Buffer.alloc(file.stat.size);
  const read = readSync(file.fd, buffer, 0, file.stat.size, 0);
  return buffer.subarray(0, read).toString("utf8");
}

/** Reads a regular file of at most `maxBytes` (opened with openFile: never a FIFO or a device). */
export function readSmallFile(path: string, maxBytes: number, options: Omit<OpenOptions, "maxBytes"> = {}): string {
  const file = openFile(path, { ...options, maxBytes });
  try {
    return readOpened(file);
  } finally {
    closeSync(file.fd);
  }
}

/** The field that marks a cache file as ours. */
const CACHE_MARK = { by: "nixos-closure" } as const;

/**
 * The fields of a cache file of ours (one beside a config dir), or null when
 * it is missing, unreadable, not JSON or not ours: a cache is never a reason
 * to fail.
 */
export function readCache(path: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(readIfExists(path) ?? "null") as Record<string, unknown> | null;
    return value !== null && typeof value === "object" && value.by === CACHE_MARK.by ? value : null;
  } catch {
    return null;
  }
}

/** Whether `path` holds nothing, or a cache of ours: only then may it be replaced or removed. */
export function isOursOrFree(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) === undefined || readCache(path) !== null;
}

/**
 * Writes a cache file, marked as ours, unless something not ours is there.
 * A cache that cannot be written (a full disk) only costs the next run the
 * work it saves, so it never fails a step: returns whether it was written.
 */
export function writeCache(path: string, fields: Record<string, unknown>): boolean {
  if (!isOursOrFree(path)) return false;
  try {
    writeFileAtomic(path, `${JSON.stringify({ ...CACHE_MARK, ...fields })}\n`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes a file of ours, marked as a cache is, that a step needs written
 * (a record, not a cache): a failure fails the step, and a file not ours at
 * that path is refused, untouched.
 */
export function writeRecord(path: string, fields: Record<string, unknown>): void {
  if (!isOursOrFree(path)) {
    throw new SetupError(`${path} exists and was not written by nixos-closure; nothing was changed: move it away`);
  }
  writeFileAtomic(path, `${JSON.stringify({ ...CACHE_MARK, ...fields })}\n`);
}

/** Where a link points, when that is there: null for no link, or one whose target is gone (a result link whose system was collected). */
export function existingLinkTarget(link: string): string | null {
  try {
    const target = readlinkSync(link);
    return existsSync(target) ? target : null;
  } catch {
    return null;
  }
}

/** Reads a regular file, or null when it does not exist; refuses a FIFO or a device rather than wait on it. */
export function readIfExists(path: string): string | null {
  let file: OpenedFile;
  try {
    file = openFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  try {
    return readOpened(file);
  } finally {
    closeSync(file.fd);
  }
}

/**
 * Writes `content` to `path` through a temporary file renamed into place, so a
 * reader sees the old file or the new one, never a mix. A file that already
 * holds `content` is left untouched (its mtime too). Returns whether it wrote.
 */
export function writeFileAtomic(path: string, content: string): boolean {
  if (readIfExists(path) === content) return false;
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    writeFileSync(temporary, content, { mode: 0o644 });
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    // A failed write(2) names no path; the file it was for is what the operator needs.
    if (isFileSystemError(error) && !error.path) error.path = path;
    throw error;
  }
  return true;
}
