// Keeps two steps from working on one config dir (or one prepared root) at
// once: two workers, a retry overlapping a slow first try, two VMs given the
// same root. The lock is the kernel's: flock(1) holds an exclusive lock on a
// file beside the directory (not inside: the `path:` fetcher copies the dir
// into the store) for as long as our pipe to it is open. The file is never
// deleted, so there is no stale lock to take over and no race in taking one
// over; the kernel releases the lock when the holder exits, SIGKILL included.
// While held, the file names its holder, for the messages of those waiting.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { Interrupted, SetupError } from "../core/errors.ts";
import { fileSystemMessage, isFileSystemError } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { abortSignalName, type Env } from "../core/process.ts";

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
}

export function lockPathFor(dir: string): string {
  return `${dir.replace(/\/+$/, "")}.lock`;
}

/** flock's exit code when the lock is held by someone else (-E). */
const BUSY = 75;

/** Tries once to take the lock: the helper holding it, or null when another process holds it. */
function tryLock(path: string, env: Env): Promise<ChildProcess | null> {
  try {
    // Made here, so that a path flock could not open fails with the reason (ELOOP, ENAMETOOLONG, EROFS, ...).
    closeSync(openSync(path, "a", 0o644));
  } catch (error) {
    const why = isFileSystemError(error) ? fileSystemMessage(error) : String(error);
    return Promise.reject(new SetupError(`cannot take the lock ${path}: ${why}`));
  }
  return new Promise((resolve, reject) => {
    const child = spawn(
      "flock",
      ["--exclusive", "--nonblock", "--conflict-exit-code", String(BUSY), path, "sh", "-c", "echo locked; exec cat"],
      // flock, sh and cat: from PATH, else where every Linux distribution has them.
      { env: { PATH: [env.PATH, "/usr/bin", "/bin"].filter(Boolean).join(":") }, stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    child.stdout?.once("data", () => resolve(child));
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        new SetupError(
          error.code === "ENOENT"
            ? "flock was not found on PATH: install util-linux, which provides it"
            : `cannot run flock: ${error.message}`,
        ),
      ),
    );
    child.on("exit", (code) => {
      if (code === BUSY) resolve(null);
      else reject(new SetupError(`cannot lock ${path}: flock exited with ${code}: ${stderr.trim()}`));
    });
  });
}

function release(helper: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (helper.exitCode !== null || helper.signalCode !== null) {
      resolve();
      return;
    }
    helper.once("exit", () => resolve());
    helper.stdin?.end();
  });
}

function readOwner(path: string): Owner | null {
  try {
    const owner = JSON.parse(readFileSync(path, "utf8")) as Owner;
    return typeof owner?.pid === "number" && typeof owner.step === "string" ? owner : null;
  } catch {
    return null;
  }
}

/** Writes who holds the lock, for the messages of those waiting; only a courtesy, so a full disk does not stop the step. */
function nameHolder(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch {}
}

/** Runs `work` holding the lock of `dir`; waits for a live holder, then refuses. */
export async function withDirLock<T>(dir: string, holder: LockHolder, work: () => Promise<T>): Promise<T> {
  const { step, log, signal } = holder;
  const path = lockPathFor(dir);
  const deadline = Date.now() + holder.lockWaitSeconds * 1000;
  let announced = false;
  let helper = await tryLock(path, holder.env);
  while (helper === null) {
    const owner = readOwner(path);
    const who = owner ? `${owner.step} (pid ${owner.pid} on ${owner.host}, since ${owner.since})` : "another step";
    if (signal.aborted) throw new Interrupted(abortSignalName(signal));
    if (Date.now() >= deadline) {
      throw new SetupError(
        `${dir} is in use by ${who}; refusing to run ${step} at the same time. Wait for it to finish, then try again.`,
      );
    }
    if (!announced) log.info(`waiting for ${who} to release ${dir} ...`);
    announced = true;
    await new Promise((resolve) => setTimeout(resolve, 200));
    helper = await tryLock(path, holder.env);
  }
  try {
    const me: Owner = { pid: process.pid, host: hostname(), step, since: new Date().toISOString() };
    nameHolder(path, `${JSON.stringify(me)}\n`);
    return await work();
  } finally {
    nameHolder(path, "");
    await release(helper);
  }
}

/** The step holding the lock of `dir` now, or null when it is free. */
export async function lockHolderOf(dir: string, env: Env): Promise<string | null> {
  const path = lockPathFor(dir);
  const helper = await tryLock(path, env);
  if (helper !== null) {
    await release(helper);
    return null;
  }
  return readOwner(path)?.step ?? "another step";
}
