// lock_config's core: pin a rendered config dir's inputs, re-locking the
// source overrides every time and the library when asked; a failure leaves
// flake.lock as it was.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { sourceInputsOf } from "../config/render.ts";
import { SetupError } from "../core/errors.ts";
import { MAX_NIX_FILE_BYTES, readIfExists, readSmallFile, writeFileAtomic } from "../core/files.ts";
import { pathFlakeRef } from "../nix/flake_ref.ts";
import { flakeLock, updateInputs } from "../nix/operations.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { existingConfigDir } from "../worker/layout.ts";
import type { Context } from "./context.ts";

export interface LockResult {
  config_dir: string;
  lock: Record<string, unknown>;
  src_inputs: string[];
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Refuses a config dir whose flake.lock is not JSON, naming the file and the step that repairs it. */
export function checkLockFile(context: Context, configDir: string): void {
  const lockFile = join(configDir, "flake.lock");
  const text = readIfExists(lockFile);
  if (text !== null && !isJson(text)) {
    throw new SetupError(
      `${lockFile} is not valid JSON (a write cut short?): run ${context.words.step("lock_config")}, which locks it afresh`,
    );
  }
}

export async function lockConfig(context: Context, configDir: string, updateLibrary: boolean): Promise<LockResult> {
  const dir = existingConfigDir(configDir, context.words.step("render_config"), context.env);
  const nix = await context.nix();
  context.log.detail(`using ${nix.program}`);
  return withDirLock(dir, context, async () => {
    const lockFile = join(dir, "flake.lock");
    const ref = pathFlakeRef(dir);
    const srcInputs = sourceInputsOf(readSmallFile(join(dir, "flake.nix"), MAX_NIX_FILE_BYTES));
    const previous = readIfExists(lockFile);
    if (previous !== null && !isJson(previous)) {
      // A lock file cut short (a full disk, a crash) would fail every Nix call: lock afresh, from the inputs as they are.
      context.log.warn(`${lockFile} is not valid JSON (a write cut short?): locking the inputs afresh`);
      rmSync(lockFile);
    }
    try {
      // One Nix call: updating the named inputs also locks any input not locked yet, and keeps the others pinned.
      const updates = [...srcInputs, ...(updateLibrary ? ["nixos-flake"] : [])];
      if (updates.length > 0) await updateInputs(nix, ref, updates);
      else await flakeLock(nix, ref);
    } catch (error) {
      if (previous === null) rmSync(lockFile, { force: true });
      else writeFileAtomic(lockFile, previous);
      throw error;
    }
    const text = readIfExists(lockFile);
    if (text === null) throw new SetupError(`nix flake lock succeeded but wrote no ${lockFile}`);
    return { config_dir: dir, lock: JSON.parse(text) as Record<string, unknown>, src_inputs: srcInputs };
  });
}
