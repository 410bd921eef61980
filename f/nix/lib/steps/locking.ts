// lock_config's core: pin a rendered config dir's inputs, re-locking the
// source overrides every time and the library when asked; a failure leaves
// flake.lock as it was.
import { createHash } from "node:crypto";
import { realpathSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { type CopiedSource, watchCopies } from "../build/progress/source_copy.ts";
import type { WorkTreeSnapshot } from "../config/model.ts";
import { pathInputsOf, sourceInputsOf, withWorkTreeSnapshots, workTreeInputsOf } from "../config/render.ts";
import { checkRenderId } from "../config/render_identity.ts";
import { snapshotWorkTree } from "../config/work_tree.ts";
import { InputError, SetupError } from "../core/errors.ts";
import {
  forbiddenPart,
  isOursOrFree,
  MAX_NIX_FILE_BYTES,
  readCache,
  readIfExists,
  readSmallFile,
  redirectable,
  surveyTree,
  writeCache,
  writeFileAtomic,
} from "../core/files.ts";
import { runningUid } from "../core/process.ts";
import { lockChanges } from "../nix/flake_lock.ts";
import { pathFlakeRef } from "../nix/flake_ref.ts";
import type { Nix } from "../nix/locate.ts";
import { flakeLock, updateInputs } from "../nix/operations.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { configDirCaches, existingConfigDir } from "../worker/layout.ts";
import { isJson } from "./checks.ts";
import type { Context } from "./context.ts";

export interface LockResult {
  config_dir: string;
  lock: Record<string, unknown>;
  src_inputs: string[];
}

/**
 * What a lock depends on: flake.nix, flake.lock, and the Nix binary (its
 * file, so an upgrade in place counts). Equal keys mean `nix flake lock`
 * would find nothing to fill and leave flake.lock as it is.
 */
function lockKey(nix: Nix, flake: string, lock: string): string {
  const program = realpathSync(nix.program);
  const { ino, size, mtimeMs } = statSync(program);
  return createHash("sha256")
    .update(JSON.stringify([program, ino, size, mtimeMs, flake, lock]))
    .digest("hex");
}

function lastLockKey(file: string): string | null {
  const stamp = readCache(file) as { key?: unknown } | null;
  return typeof stamp?.key === "string" ? stamp.key : null;
}

// The stamp is a cache: a stale one names files that no longer are (its key
// cannot match them), and failing to write it only costs the next run a Nix
// call. So neither of these fails a lock that Nix did; what is not ours there
// stays, and is named.
function forgetLastLock(file: string, context: Context): void {
  if (isOursOrFree(file)) {
    try {
      rmSync(file, { force: true });
      return;
    } catch {}
  }
  context.log.warn(`${file} is not a file of nixos-closure: its last lock cannot be remembered (nix flake lock runs every time)`);
}

/**
 * flake.nix with each git work tree's input at a snapshot of the tree as it
 * is now (rewritten when the tree changed: an edit lands in the next lock,
 * as a directory's does), and the sources the lock copies into the store.
 */
/**
 * A directory override is checked again when it is locked, as Nix is about
 * to copy it: render_config checked it and wrote its real path, but its
 * owner may have changed it since (a part of the path swapped for a link
 * into a private tree, a file made private). Refused by the input's name.
 */
function checkStillChecked(flakeFile: string, input: string, dir: string, uid: number): void {
  const field = `${flakeFile}: ${input}`;
  let real: string | null = null;
  try {
    real = realpathSync(dir);
  } catch {}
  if (real !== dir) {
    throw new InputError(
      field,
      dir,
      real === null
        ? "is gone since render_config checked it: render again"
        : `now leads elsewhere (${real}) than when render_config checked it: render again`,
    );
  }
  const hidden = forbiddenPart(surveyTree(dir, { uid }), uid);
  if (hidden !== null) {
    throw new InputError(
      field,
      dir,
      `holds ${hidden.path}, which only its owner may read; Nix copies a source into the store, where everyone can read it: ` +
        "make the tree readable (chmod -R o+rX) or choose another directory",
    );
  }
  const redirect = redirectable(dirname(dir), uid);
  if (redirect !== null) throw new InputError(field, dir, `is in no safe place since render_config checked it: ${redirect}`);
}

async function followWorkTrees(
  context: Context,
  flakeFile: string,
): Promise<{ flake: string; given: string; copied: CopiedSource[] }> {
  const flake = readSmallFile(flakeFile, MAX_NIX_FILE_BYTES);
  const uid = runningUid();
  const snapshots = new Map<string, WorkTreeSnapshot>();
  const copied: CopiedSource[] = pathInputsOf(flake).map(({ input, dir }) => {
    checkStillChecked(flakeFile, input, dir, uid);
    return { what: dir, bytes: () => surveyTree(dir, { uid }).bytes };
  });
  for (const tree of workTreeInputsOf(flake)) {
    const { snapshot } = await snapshotWorkTree(
      context,
      { field: `${flakeFile}: ${tree.input}`, subject: `override ${tree.input.replace(/-src$/, "")}`, dir: tree.dir },
      uid,
    );
    snapshots.set(tree.input, snapshot);
    copied.push({ what: `the files git tracks in ${tree.dir}`, bytes: () => snapshot.bytes });
    if (snapshot.rev !== tree.rev) context.log.info(`${tree.dir} changed: ${tree.input} now takes its snapshot ${snapshot.rev}`);
  }
  const followed = withWorkTreeSnapshots(flake, snapshots);
  writeFileAtomic(flakeFile, followed);
  return { flake: followed, given: flake, copied };
}

export async function lockConfig(
  context: Context,
  configDir: string,
  updateLibrary: boolean,
  renderId = "",
): Promise<LockResult> {
  const dir = existingConfigDir(configDir, context.words.step("render_config"), context.env);
  const nix = await context.nix();
  context.log.detail(`using ${nix.program}`);
  return withDirLock(dir, context, async () => {
    checkRenderId(dir, renderId, context.step);
    const lockFile = join(dir, "flake.lock");
    const ref = pathFlakeRef(dir);
    const { flake, given, copied } = await followWorkTrees(context, join(dir, "flake.nix"));
    const srcInputs = sourceInputsOf(flake);
    const previous = readIfExists(lockFile);
    const stampFile = configDirCaches(dir).locked;
    if (previous !== null && !isJson(previous)) {
      // A lock file cut short (a full disk, a crash) would fail every Nix call: lock afresh, from the inputs as they are.
      context.log.warn(`${lockFile} is not valid JSON (a write cut short?): locking the inputs afresh`);
      rmSync(lockFile);
    }
    const updates = [...srcInputs, ...(updateLibrary ? ["nixos-flake"] : [])];
    // Nothing to re-lock, and flake.nix and flake.lock as this Nix left them: a Nix process (tens of ms) would change nothing.
    if (
      updates.length === 0 &&
      previous !== null &&
      isJson(previous) &&
      lastLockKey(stampFile) === lockKey(nix, flake, previous)
    ) {
      context.log.info(
        `${lockFile} is current (flake.nix unchanged since ${nix.program} locked it): nothing for nix flake lock to fill`,
      );
      return { config_dir: dir, lock: JSON.parse(previous) as Record<string, unknown>, src_inputs: srcInputs };
    }
    forgetLastLock(stampFile, context);
    const watch = context.progress === "off" ? null : watchCopies(context.log, copied);
    const onLine = watch ? (line: string) => watch.line(line) : undefined;
    try {
      // One Nix call: updating the named inputs also locks any input not locked yet, and keeps the others pinned.
      if (updates.length > 0) await updateInputs(nix, ref, updates, onLine);
      else await flakeLock(nix, ref, onLine);
    } catch (error) {
      if (previous === null) rmSync(lockFile, { force: true });
      else writeFileAtomic(lockFile, previous);
      // flake.nix names the snapshots flake.lock pins.
      writeFileAtomic(join(dir, "flake.nix"), given);
      throw error;
    } finally {
      watch?.finish();
    }
    const text = readIfExists(lockFile);
    if (text === null) throw new SetupError(`nix flake lock succeeded but wrote no ${lockFile}`);
    writeCache(stampFile, { key: lockKey(nix, flake, text) });
    const lock = JSON.parse(text) as Record<string, unknown>;
    // Nix's own account of the change is a detail (-v); this is the line everyone sees.
    const changes = lockChanges(previous !== null && isJson(previous) ? JSON.parse(previous) : null, lock);
    if (changes !== null) context.log.info(changes);
    return { config_dir: dir, lock, src_inputs: srcInputs };
  });
}
