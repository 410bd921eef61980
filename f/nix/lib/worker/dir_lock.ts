// Keeps two steps from working on one config dir at once (two workers, or a
// retry overlapping a slow first try). The lock is a file beside the config
// dir (not inside: the `path:` fetcher copies the dir into the store), created
// exclusively and naming its owner; a lock whose process is gone is taken over.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { Interrupted, SetupError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { abortSignalName } from "../core/process.ts";

interface Owner {
  pid: number;
  host: string;
  step: string;
  since: string;
}

export function lockPathFor(configDir: string): string {
  return `${configDir.replace(/\/+$/, "")}.lock`;
}

function readOwner(path: string): Owner | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Owner;
  } catch {
    return null;
  }
}

function isGone(owner: Owner | null): boolean {
  if (owner === null || owner.host !== hostname()) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

function tryCreate(path: string, owner: Owner): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  writeSync(fd, JSON.stringify(owner));
  closeSync(fd);
  return true;
}

/** What the lock needs from the step taking it. */
export interface LockHolder {
  /** The step's name, recorded as the owner. */
  step: string;
  log: Logger;
  /** How long to wait for another step before refusing. */
  lockWaitSeconds: number;
  /** Waiting stops when the step is interrupted. */
  signal: AbortSignal;
}

/** Runs `work` holding the config dir's lock; waits for a live holder, then refuses. */
export async function withConfigDirLock<T>(configDir: string, holder: LockHolder, work: () => Promise<T>): Promise<T> {
  const { step, log, signal } = holder;
  const path = lockPathFor(configDir);
  const me: Owner = { pid: process.pid, host: hostname(), step, since: new Date().toISOString() };
  const deadline = Date.now() + holder.lockWaitSeconds * 1000;
  let announced = false;
  while (!tryCreate(path, me)) {
    const owner = readOwner(path);
    if (isGone(owner)) {
      log.warn(`removing the stale lock ${path} of pid ${owner?.pid} (${owner?.step}), which is no longer running`);
      rmSync(path, { force: true });
      continue;
    }
    const who = owner ? `${owner.step} (pid ${owner.pid} on ${owner.host}, since ${owner.since})` : "another step";
    if (Date.now() >= deadline) {
      throw new SetupError(
        `${configDir} is in use by ${who}; refusing to run ${step} at the same time. ` +
          `Wait for it to finish, or remove ${path} if that process is gone.`,
      );
    }
    if (signal.aborted) throw new Interrupted(abortSignalName(signal));
    if (!announced) log.info(`waiting for ${who} to release ${configDir} ...`);
    announced = true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  try {
    return await work();
  } finally {
    if (readOwner(path)?.pid === process.pid) rmSync(path, { force: true });
  }
}
