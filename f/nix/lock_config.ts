/**
 * lock_config: pin the inputs of a rendered config dir.
 *
 * Equivalent shell commands (Nix >= 2.19 and Lix; before 2.19 the update is
 * `nix flake lock path:$dir --update-input fio-src ...`):
 *
 *   nix flake lock path:$dir
 *   nix flake update --flake path:$dir fio-src ...   # every <pkg>-src input, every run
 *   nix flake update --flake path:$dir nixos-flake   # only with update=true
 *
 * Source overrides are local checkouts the operator edits, so they are
 * re-locked every time; the library is re-pinned only when asked. A failure
 * leaves flake.lock as it was.
 *
 * @param config_dir The config dir render_config returned.
 * @param update Re-pin the nixos-flake library input (after the library changed).
 * @param nix_settings The flow's nix group: builders, substituters, trusted_public_keys, max_jobs, cores, options.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { withConfigDirLock } from "./dir_lock.ts";
import { existingConfigDir } from "./environment.ts";
import { SetupError } from "./errors.ts";
import { readIfExists, writeFileAtomic } from "./files.ts";
import * as log from "./log.ts";
import { flakeLock, locateNix, updateInputs, withSettings } from "./nix.ts";
import { nixSettings, settingsArgs } from "./nix_settings.ts";
import { pathFlakeRef, sourceInputsOf } from "./render.ts";

export interface LockResult {
  config_dir: string;
  lock: Record<string, unknown>;
  src_inputs: string[];
}

export async function main(config_dir: string, update: boolean = false, nix_settings: object = {}): Promise<LockResult> {
  const settings = nixSettings(nix_settings);
  const dir = existingConfigDir(config_dir);
  const nix = withSettings(await locateNix(), settingsArgs(settings));
  log.info(`using ${nix.version.text} at ${nix.program}`);
  return withConfigDirLock(dir, "lock_config", async () => {
    const lockFile = join(dir, "flake.lock");
    const ref = pathFlakeRef(dir);
    const srcInputs = sourceInputsOf(readFileSync(join(dir, "flake.nix"), "utf8"));
    const previous = readIfExists(lockFile);
    try {
      await flakeLock(nix, ref);
      await updateInputs(nix, ref, [...srcInputs, ...(update ? ["nixos-flake"] : [])]);
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
