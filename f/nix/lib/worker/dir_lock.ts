// Keeps two steps from working on one config dir (or one prepared root) at
// once: two workers, a retry overlapping a slow first try, two VMs given the
// same root. The lock is the kernel's: flock(1) locks a file beside the
// directory (not inside: the `path:` fetcher copies the dir into the store)
// through a descriptor this process opened and keeps. No stale lock to take
// over: the kernel releases the lock when the holder exits, SIGKILL included.
// The file is deleted only with its VM (`remove`), by the lock's holder; a
// taker, once it holds a lock, checks that the path still names the file it
// locked, else opens the path afresh: never two holders.
// While held, the file names its holder, for the messages of those waiting.
import { spawn } from "node:child_process";
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Busy, Interrupted, SetupError } from "../core/errors.ts";
import { fileSystemMessage, isFileSystemError, readSmallFile, realPathOf } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { abortSignalName, type Env, runningUid } from "../core/process.ts";

interface Owner {
  pid: number;
  host: string;
  step: string;
  since: string;
}

/** What the lock needs from the step taking it. */
export interface LockHolder {
  /** The step's name, recorded as the holder. */
  step: string;
  log: Logger;
  /** Where flock is found (PATH). */
  env: Env;
  /** How long to wait for another step before refusing. */
  lockWaitSeconds: number;
  /** Waiting stops when the step is interrupted. */
  signal: AbortSignal;
  /** Directories whose lock the caller already holds for the whole run (the CLI's): taken again, they would wait on themselves. */
  heldLocks?: ReadonlySet<string>;
}

export function lockPathFor(dir: string): string {
  return `${dir.replace(/\/+$/, "")}.lock`;
}

/**
 * The one spelling of `dir` its lock goes by: its parent's real path, so
 * that a link on the way (a home or WORKERS_DIR reached through one) leads
 * to the same lock, and a run holding it never waits on itself. Its last
 * component stays: a root is itself a link of ours.
 */
function lockedDir(dir: string): string {
  const path = resolve(dir);
  return join(realPathOf(dirname(path)), basename(path));
}

/** flock's exit code when the lock is held by someone else (-E). */
const BUSY = 75;

/**
 * Tries once to take the lock: the descriptor that holds it, or null when
 * another process holds it. The file is opened (and checked) here, and
 * flock(1) locks that very descriptor, inherited as fd 3: nothing can swap
 * the file between the check and the lock. The lock belongs to the open
 * file, so it lasts until this process closes the descriptor or dies.
 */
async function tryLock(path: string, env: Env): Promise<number | null> {
  for (;;) {
    const fd = await tryLockOpened(path, env);
    // `remove` deletes a VM's lock file while holding it: a waiter then holds a file no longer at the path,
    // which would leave it and the next step holding two different locks. It opens the path afresh.
    if (fd === null || namesFile(path, fd)) return fd;
    closeSync(fd);
  }
}

function namesFile(path: string, fd: number): boolean {
  const now = lstatSync(path, { throwIfNoEntry: false });
  const held = fstatSync(fd);
  return now !== undefined && now.ino === held.ino && now.dev === held.dev;
}

async function tryLockOpened(path: string, env: Env): Promise<number | null> {
  const fd = openLockFile(path);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("flock", ["--exclusive", "--nonblock", "--conflict-exit-code", String(BUSY), "3"], {
        // flock from PATH, else where every Linux distribution has it.
        env: { PATH: [env.PATH, "/usr/bin", "/bin"].filter(Boolean).join(":") },
        stdio: ["ignore", "ignore", "pipe", fd],
      });
      let stderr = "";
      child.stderr?.on("data", (chunk) => {
        stderr += chunk;
      });
      child.on("error", (error: NodeJS.ErrnoException) =>
        reject(
          new SetupError(
            error.code === "ENOENT"
              ? "flock was not found on PATH: install util-linux, which provides it"
              : `cannot run flock: ${error.message}`,
          ),
        ),
      );
      child.on("exit", (exitCode) => {
        if (exitCode === 0 || exitCode === BUSY) resolve(exitCode);
        else reject(new SetupError(`cannot lock ${path}: flock exited with ${exitCode}: ${stderr.trim()}`));
      });
    });
    if (code === 0) return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  closeSync(fd);
  return null;
}

/** The first line of every lock file we write: what makes one ours, even cut short by a crash or a full disk. */
const LOCK_HEADER = "nixos-closure lock\n";

function isOurs(text: string): boolean {
  return LOCK_HEADER.startsWith(text) || text.startsWith(LOCK_HEADER);
}

function ownerOf(text: string): Owner | null {
  if (!text.startsWith(LOCK_HEADER)) return null;
  try {
    const owner = JSON.parse(text.slice(LOCK_HEADER.length)) as Owner;
    return typeof owner?.pid === "number" && typeof owner.step === "string" ? owner : null;
  } catch {
    return null;
  }
}

function readOwner(path: string): Owner | null {
  try {
    return ownerOf(readSmallFile(path, MAX_LOCK_FILE_BYTES));
  } catch {
    return null;
  }
}

/** Writes who holds the lock, through the locked descriptor, for the messages of those waiting; only a courtesy, so a full disk does not stop the step. */
function nameHolder(fd: number, text: string): void {
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, text, 0);
  } catch {}
}

const MAX_LOCK_FILE_BYTES = 4096;

function isSymbolicLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Opens the lock file, made if need be, checking that the file there is one
 * of ours: a regular file (not a link, a FIFO, a directory) of the running
 * user's, empty or starting with our header (whole, or cut short by a crash
 * or a full disk). Anything else (someone's Cargo.lock, a link to their file,
 * a file another user made first where others may write) is refused and left
 * as it is; it is never written or emptied.
 */
function openLockFile(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP" && isSymbolicLink(path)) {
      throw new SetupError(`${path} is a symbolic link, not a lock of nixos-closure; nothing was changed: move it away`);
    }
    const why = isFileSystemError(error) ? fileSystemMessage(error) : String(error);
    throw new SetupError(`cannot take the lock ${path}: ${why}`);
  }
  try {
    const stat = fstatSync(fd);
    const foreign = () =>
      new SetupError(
        `${path} exists and is not a lock of nixos-closure; nothing was changed: move it away, or choose another path`,
      );
    if (!stat.isFile() || stat.uid !== runningUid() || stat.size > MAX_LOCK_FILE_BYTES) throw foreign();
    const buffer = Buffer.alloc(stat.size);
    readSync(fd, buffer, 0, stat.size, 0);
    if (!isOurs(buffer.toString("utf8"))) throw foreign();
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** The holder of a lock, as those waiting for it see it. */
export interface LockOwner {
  /** The holder's step (or what it named itself). */
  name: string;
  /** `(pid 12 on host, since ...)` */
  details: string;
}

/** How a wait for a lock other than a config dir's is told, and what happens when it ends without the lock. */
export interface LockWait<T> {
  /** The line shown once while waiting. */
  waiting(owner: LockOwner | null): string;
  /** Runs, without the lock, instead of refusing when the wait is over. */
  timedOut(owner: LockOwner | null): Promise<T>;
}

/** Whether the lock file of `dir` is missing, or a lock file of ours: anything else there makes withDirLock refuse. */
export function isLockOursOrFree(dir: string): boolean {
  const path = lockPathFor(dir);
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return true;
  if (!stat.isFile() || stat.uid !== runningUid() || stat.size > MAX_LOCK_FILE_BYTES) return false;
  try {
    return isOurs(readSmallFile(path, MAX_LOCK_FILE_BYTES));
  } catch {
    return false;
  }
}

/**
 * Runs `work` holding the lock of `dir`; waits for a live holder, then
 * refuses (or, with `wait`, says so its own way and runs its timedOut).
 */
export async function withDirLock<T>(given: string, holder: LockHolder, work: () => Promise<T>, wait?: LockWait<T>): Promise<T> {
  const { step, log, signal } = holder;
  const dir = lockedDir(given);
  if ([...(holder.heldLocks ?? [])].some((held) => lockedDir(held) === dir)) return work();
  const path = lockPathFor(dir);
  const deadline = Date.now() + holder.lockWaitSeconds * 1000;
  let announced = false;
  let fd = await tryLock(path, holder.env);
  while (fd === null) {
    const found = readOwner(path);
    const owner = found ? { name: found.step, details: `(pid ${found.pid} on ${found.host}, since ${found.since})` } : null;
    const who = owner ? `${owner.name} ${owner.details}` : "another step";
    if (signal.aborted) throw new Interrupted(abortSignalName(signal));
    if (Date.now() >= deadline) {
      if (wait) return wait.timedOut(owner);
      throw new Busy(
        owner?.name ?? "another step",
        `${dir} is in use by ${who}; refusing to run ${step} at the same time. Wait for it to finish, then try again.`,
      );
    }
    if (!announced) log.info(wait ? wait.waiting(owner) : `waiting for ${who} to release ${dir} ...`);
    announced = true;
    await new Promise((resolve) => setTimeout(resolve, 200));
    fd = await tryLock(path, holder.env);
  }
  try {
    const me: Owner = { pid: process.pid, host: hostname(), step, since: new Date().toISOString() };
    nameHolder(fd, `${LOCK_HEADER}${JSON.stringify(me)}\n`);
    return await work();
  } finally {
    nameHolder(fd, "");
    closeSync(fd); // releases the lock
  }
}

/**
 * Removes the lock file of `dir` where a lock is no longer kept (an earlier
 * version's place for it), taken first so that no holder loses it; a file
 * there that is not a lock of ours, or one held, is left as it is.
 */
export async function retireLock(dir: string, holder: LockHolder): Promise<void> {
  const path = lockPathFor(lockedDir(dir));
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return;
  try {
    await withDirLock(dir, { ...holder, lockWaitSeconds: 0, heldLocks: new Set() }, async () => rmSync(path, { force: true }));
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
  }
}

/** Whether a lock file of ours is beside `dir` (a regular file, empty or naming a holder), read without waiting on it. */
export function hasLockOfOurs(dir: string): boolean {
  const path = lockPathFor(lockedDir(dir));
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat?.isFile() || stat.uid !== runningUid() || stat.size > MAX_LOCK_FILE_BYTES) return false;
  try {
    return isOurs(readSmallFile(path, MAX_LOCK_FILE_BYTES));
  } catch {
    return false;
  }
}

/** The step holding the lock of `dir` now, or null when it is free. */
export async function lockHolderOf(dir: string, env: Env): Promise<string | null> {
  const path = lockPathFor(lockedDir(dir));
  // No lock file: nobody holds it (and asking makes none).
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return null;
  const fd = await tryLock(path, env);
  if (fd !== null) {
    closeSync(fd);
    return null;
  }
  return readOwner(path)?.step ?? "another step";
}
