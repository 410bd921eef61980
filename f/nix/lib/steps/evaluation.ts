// Where a build finds the evaluation of its system already done: the key of
// a locked config dir (its files, the Nix, its settings) and the record of
// that key, shared by every VM of the worker; and one evaluation at a time
// per key, so runs of one config at once evaluate it once.
import { realpathSync, rmSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";
import {
  changedParts,
  configDirDigest,
  type EvaluationRecord,
  isKeyParts,
  type KeyParts,
  keyOfParts,
  keyParts,
  readRecord,
  recordPath,
  untrustedDirectory,
  VM_NAME,
  writeRecord,
} from "../build/evaluation_record.ts";
import { preparedRootsOf } from "../build/root/generations.ts";
import { makeDirs, readCache, writeCache } from "../core/files.ts";
import type { Nix } from "../nix/locate.ts";
import { effectiveSettings } from "../nix/operations.ts";
import { isLockOursOrFree, lockPathFor, withDirLock } from "../worker/dir_lock.ts";
import { configDirCaches, workerLayout } from "../worker/layout.ts";
import type { Context } from "./context.ts";

/** A build that may use records: its key and where they are kept. */
export interface RecordedEvaluation {
  key: string;
  parts: KeyParts;
  recordsDir: string;
  /** eval-cache is off: the build evaluates whatever a record says, then records what it gave. */
  forced: boolean;
}

/**
 * The key of the config dir's evaluation, or why no key can be made (a
 * config dir whose contents are not all known): then the build evaluates
 * and records nothing. With `eval-cache = false` (Nix's own switch, from the
 * nix group, nix.conf or NIX_CONFIG; the CLI's --no-eval-cache) the key is
 * made all the same, `forced`: the build evaluates and records what it gave,
 * so a forced build also mends a record.
 */
export async function recordedEvaluation(
  context: Context,
  nix: Nix,
  dir: string,
): Promise<RecordedEvaluation | { reason: string }> {
  // Roots this VM prepared inside its config dir are links of ours that the evaluation never reads.
  const rootLinks = preparedRootsOf(dir)
    .map((root) => root.rootDir)
    .filter((root) => dirname(root) === dir)
    .map((root) => basename(root));
  const digest = configDirDigest(dir, rootLinks);
  if ("unkeyable" in digest) return { reason: `${dir} cannot be keyed: ${digest.unkeyable}` };
  const settings = await effectiveSettings(nix);
  const program = realpathSync(nix.program);
  const { ino, size, mtimeMs } = statSync(program);
  const environment = Object.fromEntries(
    Object.entries(nix.runner.env).filter(
      (entry): entry is [string, string] => entry[0].startsWith("NIX_") && entry[1] !== undefined,
    ),
  );
  const parts = keyParts(digest.files, {
    nix: { path: program, ino, size, mtimeMs, version: (await nix.version()).text },
    settings,
    environment,
  });
  return {
    key: keyOfParts(parts),
    parts,
    recordsDir: workerLayout(context.env).evaluationsDir,
    forced: settings["eval-cache"] === false,
  };
}

/**
 * The record of this build's key, or null (an unusable one is said at -v,
 * and so is a missing one when `announce`).
 */
export function usableRecord(context: Context, evaluation: RecordedEvaluation, announce = true): EvaluationRecord | null {
  const found = readRecord(evaluation.recordsDir, evaluation.key);
  if (found === null) {
    if (announce) context.log.detail(`no evaluation record of these inputs yet (${evaluation.key})`);
    return null;
  }
  if ("unusable" in found) {
    context.log.detail(`evaluation record not used: ${found.unusable}`);
    return null;
  }
  context.log.detail(`evaluation record ${recordPath(evaluation.recordsDir, evaluation.key)}`);
  return found.record;
}

/**
 * Says why this build evaluates: what changed since the VM's last build
 * (its files, the Nix, Nix's settings), or that eval-cache is off.
 */
export function sayWhyEvaluating(context: Context, dir: string, evaluation: RecordedEvaluation): void {
  if (evaluation.forced) {
    context.log.info("eval-cache is off: evaluating");
    return;
  }
  const last = readCache(configDirCaches(dir).evaluation);
  if (last === null || !isKeyParts(last.parts) || last.key === evaluation.key) return;
  const changed = changedParts(last.parts, evaluation.parts);
  if (changed.length > 0) context.log.info(`changed since this VM's last build: ${changed.join(", ")}; evaluating`);
}

/** Keeps the key of the VM's build beside its config dir, to say what changed when the next one evaluates. */
export function rememberKey(dir: string, evaluation: RecordedEvaluation): void {
  writeCache(configDirCaches(dir).evaluation, { key: evaluation.key, parts: evaluation.parts });
}

const keyLockDir = (evaluation: RecordedEvaluation) => `${evaluation.recordsDir}/${evaluation.key}`;

/**
 * Records what an evaluation gave (a record that cannot be written is said,
 * and costs only the next evaluation), then removes the key's lock file,
 * which the caller holds: those waiting on it open it afresh and find the
 * record. A record it replaces (an evaluation forced by eval-cache = false)
 * that named another system means the key missed what the evaluation read:
 * said loudly, as it is a bug of this tool.
 */
export function recordEvaluation(context: Context, evaluation: RecordedEvaluation, record: EvaluationRecord): void {
  const replaced = readRecord(evaluation.recordsDir, evaluation.key);
  if (replaced !== null && "record" in replaced && replaced.record.toplevel !== record.toplevel) {
    context.log.warn(
      `the record of these inputs named ${replaced.record.toplevel}, but evaluating them gave ${record.toplevel}: ` +
        "the record is replaced; please report this to nixos-closure (its key missed something the evaluation reads)",
    );
  }
  const failed = writeRecord(evaluation.recordsDir, record);
  if (failed === null) context.log.detail(`evaluation recorded: ${recordPath(evaluation.recordsDir, evaluation.key)}`);
  else context.log.warn(`the evaluation of this system is not recorded (${failed}): the next build evaluates again`);
  if (isLockOursOrFree(keyLockDir(evaluation))) rmSync(lockPathFor(keyLockDir(evaluation)), { force: true });
}

/** A lock holder's name as those waiting are told it: a VM's name, or nothing (a lock file is not ours to quote). */
function holderName(owner: { name: string } | null): string {
  return owner !== null && VM_NAME.test(owner.name) ? `${owner.name}'s` : "another run's";
}

/**
 * Runs `work` as the one evaluation of its key on this worker: a run that
 * needs the same key waits for it, then uses its record. The wait is
 * bounded like the config dir's; a run whose holder failed, died or took
 * longer evaluates itself, and so does one that finds no place for the
 * lock (or something not ours at its path).
 */
export function asOnlyEvaluation<T>(
  context: Context,
  evaluation: RecordedEvaluation,
  vmName: string,
  work: () => Promise<T>,
): Promise<T> {
  try {
    makeDirs(evaluation.recordsDir);
  } catch {
    return work();
  }
  if (untrustedDirectory(evaluation.recordsDir) !== null || !isLockOursOrFree(keyLockDir(evaluation))) {
    context.log.detail(`evaluating without the lock of ${keyLockDir(evaluation)}: its place is not ours`);
    return work();
  }
  return withDirLock(keyLockDir(evaluation), { ...context, step: vmName, heldLocks: new Set() }, work, {
    waiting: (owner) => `waiting for ${holderName(owner)} evaluation of the same system ${owner?.details ?? ""}...`,
    timedOut: (owner) => {
      context.log.info(
        `${holderName(owner)} evaluation of the same system is still running after ${context.lockWaitSeconds} s: ` +
          "evaluating here too",
      );
      return work();
    },
  });
}
