// prepare_root's core: a root directory whose store holds exactly a built
// closure, switched atomically to a complete new generation.
import { existsSync, readlinkSync, realpathSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { readBootInfo } from "../build/bootspec.ts";
import {
  claimGenerations,
  currentGeneration,
  generationDir,
  generations,
  pruneGenerations,
  removeTree,
  rootLayout,
  switchTo,
} from "../build/root/generations.ts";
import { populateStore, STORE_DIR, standardDirectories, systemLinks } from "../build/root/populate.ts";
import { InputError, SetupError } from "../core/errors.ts";
import { makeDirs } from "../core/files.ts";
import { formatBytes, plural } from "../core/format.ts";
import { closureInfo, dumpDb, loadDb } from "../nix/operations.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { existingConfigDir } from "../worker/layout.ts";
import type { Context } from "./context.ts";

export interface PrepareRootResult {
  config_dir: string;
  toplevel: string;
  init: string;
  initrd: string | null;
  /** The stable path of the root: a link switched between generations. */
  root_dir: string;
  /** What the host serves to the guest over virtiofs instead of /nix/store, read-only. */
  store_dir: string;
  /** The generation the root now points to. */
  generation: string;
  /** The same generation as a real directory, no symlink on its path: what to hand to Nix (`--store local?root=...`). */
  generation_dir: string;
  paths: number;
  nar_size: number;
  files_linked: number;
  files_copied: number;
}

const STORE_PATH = /^\/nix\/store\/[a-z0-9]{32}-[^/]+$/;

/** The toplevel to put in the root: the one given, else the config dir's last build (its result link). */
function chosenToplevel(context: Context, configDir: string, given: string): string {
  const build = context.words.step("build_closure");
  if (given !== "") {
    if (!STORE_PATH.test(given)) throw new InputError("toplevel", given, "must be a store path such as build_closure returns");
    if (!existsSync(given)) throw new InputError("toplevel", given, `is not in the store (run ${build} first)`);
    return given;
  }
  let target: string;
  try {
    target = readlinkSync(join(configDir, "result"));
  } catch {
    throw new SetupError(`${configDir} has no build yet (no result link): run ${build} first`);
  }
  if (!existsSync(target))
    throw new SetupError(`${configDir}/result points to ${target}, which is no longer in the store: run ${build} again`);
  return target;
}

export async function prepareRoot(
  context: Context,
  configDir: string,
  toplevel: string,
  rootDir: string,
): Promise<PrepareRootResult> {
  const dir = existingConfigDir(configDir, context.words.step("render_config"), context.env);
  if (typeof toplevel !== "string")
    throw new InputError("toplevel", toplevel, "must be a store path such as build_closure returns");
  if (toplevel !== "") chosenToplevel(context, dir, toplevel);
  const layout = rootLayout(dir, rootDir);
  const nix = await context.nix();
  // Checked now, so that a root that is not ours is refused before anything is created, and again under the locks.
  currentGeneration(layout);
  // The root's own lock sits beside it: two VMs asking for one root take turns, and the second is refused by name.
  makeDirs(dirname(layout.rootDir));
  return withDirLock(dir, context, () =>
    withDirLock(layout.rootDir, context, async () => {
      const system = chosenToplevel(context, dir, toplevel);
      const previous = currentGeneration(layout);
      claimGenerations(layout);
      const existing = generations(layout);
      const number = existing.length === 0 ? 1 : Number(existing.at(-1)?.split("/").at(-1)) + 1;
      const generation = join(layout.generationsDir, String(number));
      const partial = `${generation}.partial`;

      const infos = await closureInfo(nix, [system]);
      const paths = infos.map((i) => i.path);
      const narSize = infos.reduce((n, i) => n + i.narSize, 0);
      context.log.info(
        `preparing ${layout.rootDir} (generation ${number}) with ${plural(paths.length, "store path")}, ${formatBytes(narSize)}`,
      );
      try {
        standardDirectories(partial);
        const stats = populateStore(partial, paths, previous);
        await loadDb(nix, `local?root=${realpathSync(partial)}`, await dumpDb(nix, paths));
        systemLinks(partial, system, new Set(paths));
        renameSync(partial, generation);
        switchTo(layout, generation);
        const removed = pruneGenerations(layout, [generation, ...(previous ? [previous] : [])]);
        context.log.info(
          `root ${layout.rootDir} -> ${generation}: ${plural(stats.linked, "file")} linked, ${stats.copied} copied, ` +
            `${plural(stats.reused, "path")} reused from the previous generation${removed.length > 0 ? `; removed ${removed.join(", ")}` : ""}`,
        );
        if (stats.linked > 0) {
          context.log.info(
            `serve ${join(layout.rootDir, STORE_DIR)} to the guest read-only: its files are hard links to the host's ${STORE_DIR}, ` +
              "so a guest that could write them would change the host's store",
          );
        }
        const boot = readBootInfo(system);
        return {
          config_dir: dir,
          toplevel: system,
          init: boot.init,
          initrd: boot.initrd,
          root_dir: layout.rootDir,
          store_dir: join(layout.rootDir, STORE_DIR),
          generation,
          generation_dir: generationDir(generation),
          paths: paths.length,
          nar_size: narSize,
          files_linked: stats.linked,
          files_copied: stats.copied,
        };
      } catch (error) {
        removeTree(partial);
        throw error;
      }
    }),
  );
}
