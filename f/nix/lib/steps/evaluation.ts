// Where a build finds the evaluation of its system already done: the key of
// a locked config dir (its files, the Nix, its settings) and the record of
// that key, shared by every VM of the worker; and one evaluation at a time
// per key, so runs of one config at once evaluate it once.
import { realpathSync, rmSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";
import {
  configDirDigest,
  type EvaluationRecord,
  evaluationKey,
  readRecord,
  recordPath,
  untrustedDirectory,
  writeRecord,
} from "../build/evaluation_record.ts";
import { preparedRootsOf } from "../build/root/generations.ts";
import { makeDirs } from "../core/files.ts";
import type { Nix } from "../nix/locate.ts";
import { effectiveSettings } from "../nix/operations.ts";
import { lockPathFor, withDirLock } from "../worker/dir_lock.ts";
import { workerLayout } from "../worker/layout.ts";
import type { Context } from "./context.ts";

/** A build that may use records: its key and where they are kept. */
export interface RecordedEvaluation {
  key: string;
  recordsDir: string;
}

/**
 * The key of the config dir's evaluation, or why this build evaluates
 * whatever the records say: `eval-cache = false` (Nix's own switch, from
 * the nix group, nix.conf or NIX_CONFIG; the CLI's --no-eval-cache), or a
 * config dir whose contents are not all known.
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
  if (settings["eval-cache"] === false) return { reason: "eval-cache is off" };
  const program = realpathSync(nix.program);
  const { ino, size, mtimeMs } = statSync(program);
  const environment = Object.fromEntries(
    Object.entries(nix.runner.env).filter(
      (entry): entry is [string, string] => entry[0].startsWith("NIX_") && entry[1] !== undefined,
    ),
  );
  const key = evaluationKey(digest.files, {
    nix: { path: program, ino, size, mtimeMs, version: (await nix.version()).text },
    settings,
    environment,
  });
  return { key, recordsDir: workerLayout(context.env).evaluationsDir };
}

/** The record of this build's key whose system is still in the store, or null (an unusable one is said at -v). */
export function usableRecord(context: Context, evaluation: RecordedEvaluation): EvaluationRecord | null {
  const found = readRecord(evaluation.recordsDir, evaluation.key);
  if (found === null) {
    context.log.detail(`no evaluation record of these inputs yet (${evaluation.key})`);
    return null;
  }
  if ("unusable" in found) {
    context.log.detail(`evaluation record not used: ${found.unusable}`);
    return null;
  }
  return found.record;
}

const keyLockDir = (evaluation: RecordedEvaluation) => `${evaluation.recordsDir}/${evaluation.key}`;

/**
 * Records what an evaluation gave (a record that cannot be written is said,
 * and costs only the next evaluation), then removes the key's lock file,
 * which the caller holds: those waiting on it open it afresh and find the record.
 */
export function recordEvaluation(context: Context, evaluation: RecordedEvaluation, record: EvaluationRecord): void {
  const failed = writeRecord(evaluation.recordsDir, record);
  if (failed === null) context.log.detail(`evaluation recorded: ${recordPath(evaluation.recordsDir, evaluation.key)}`);
  else context.log.warn(`the evaluation of this system is not recorded (${failed}): the next build evaluates again`);
  rmSync(lockPathFor(keyLockDir(evaluation)), { force: true });
}

/**
 * Runs `work` as the one evaluation of its key on this worker: a run that
 * needs the same key waits for it, then uses its record. The wait is
 * bounded like the config dir's; a run whose holder failed, died or took
 * longer evaluates itself.
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
    return work(); // no place for the lock: each run evaluates, as without records
  }
  if (untrustedDirectory(evaluation.recordsDir) !== null) return work();
  return withDirLock(keyLockDir(evaluation), { ...context, step: vmName, heldLocks: new Set() }, work, {
    waiting: (owner) =>
      `waiting for ${owner ? `${owner.name}'s` : "another run's"} evaluation of the same system ${owner?.details ?? ""}...`,
    timedOut: (owner) => {
      context.log.info(
        `${owner ? `${owner.name}'s` : "another run's"} evaluation of the same system is still running after ` +
          `${context.lockWaitSeconds} s: evaluating here too`,
      );
      return work();
    },
  });
}
