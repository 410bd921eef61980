/**
 * build_closure: build the system closure of a locked config dir.
 *
 * Equivalent shell commands:
 *
 *   nix build "path:$dir#toplevel" --json --out-link "$dir/result"
 *   jq -r '."org.nixos.bootspec.v1" | .init, .initrd' "$dir/result/boot.json"
 *
 * `path:` copies the directory into the store, so nothing needs to be in git.
 * Nix replaces the result link only when the build succeeded: a failed or
 * interrupted build keeps the previous one.
 *
 * @param config_dir The config dir render_config returned (locked by lock_config).
 */
import { join } from "node:path";
import { readBootInfo } from "./bootspec.ts";
import { withConfigDirLock } from "./dir_lock.ts";
import { existingConfigDir } from "./environment.ts";
import { SetupError } from "./errors.ts";
import * as log from "./log.ts";
import { build, locateNix } from "./nix.ts";
import { pathFlakeRef } from "./render.ts";

export interface BuildClosureResult {
  config_dir: string;
  toplevel: string;
  init: string;
  initrd: string | null;
  /** The bootspec file init and initrd were read from, or null. */
  boot_json: string | null;
}

export async function main(config_dir: string): Promise<BuildClosureResult> {
  const dir = existingConfigDir(config_dir);
  const nix = await locateNix();
  log.info(`using ${nix.version.text} at ${nix.program}`);
  return withConfigDirLock(dir, "build_closure", async () => {
    const installable = `${pathFlakeRef(dir)}#toplevel`;
    const [built] = await build(nix, installable, { outLink: join(dir, "result") });
    const toplevel = built?.outputs.out;
    if (toplevel === undefined) throw new SetupError(`nix build ${installable} reported no output path`);
    const boot = readBootInfo(toplevel);
    for (const warning of boot.warnings) log.warn(warning);
    log.info(`toplevel ${toplevel}\ninit     ${boot.init}\ninitrd   ${boot.initrd ?? "(none)"}`);
    return { config_dir: dir, toplevel, init: boot.init, initrd: boot.initrd, boot_json: boot.bootJson };
  });
}
