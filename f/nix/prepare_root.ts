/**
 * prepare_root: a root directory whose store holds exactly the built closure.
 *
 * Serve `store_dir` to the guest over virtiofs (tag "store") instead of the
 * host's /nix/store: the guest then sees only its own closure, and the root
 * can be copied to another host. Equivalent shell commands:
 *
 *   new=$config_dir.roots/N.partial
 *   mkdir -p $new/{dev,proc,sys,etc,run,home,var,bin,root,tmp} $new/nix/store ...   # modes as in nixos-prepare-root
 *   cp -al $(nix path-info -r $toplevel) $new/nix/store/                           # hard links; copies across filesystems
 *   nix-store --dump-db $(nix path-info -r $toplevel) | nix-store --store "local?root=$new" --load-db
 *   ln -s $(realpath $toplevel/sw/bin/sh) $new/bin/sh                               # and the system profile, etc/NIXOS
 *   mv $new $config_dir.roots/N && ln -sfn $config_dir.roots/N $root_dir            # atomic switch
 *
 * Needs no root and no chroot. The root is a link switched atomically to a
 * complete new generation: an interrupted run keeps the last complete root,
 * and the previous generation stays until the next run, so a VM served it
 * keeps its files. Paths already in the previous generation are linked from
 * there; the rest are hard-linked from /nix/store when on the same
 * filesystem, else copied (with reflinks where the filesystem has them).
 *
 * @param config_dir The config dir of the build (render_config's result).
 * @param toplevel The system to put in the root (build_closure's result).
 * @param root_dir Where the root appears (empty: <config_dir>/root, a link into <config_dir>.roots).
 * @param nix_settings The flow's nix group (options apply to the Nix calls made here).
 */
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { readBootInfo } from "./bootspec.ts";
import { withConfigDirLock } from "./dir_lock.ts";
import { existingConfigDir } from "./environment.ts";
import { InputError } from "./errors.ts";
import * as log from "./log.ts";
import { dumpDb, loadDb, locateNix, pathInfo, withSettings } from "./nix.ts";
import { nixSettings, settingsArgs } from "./nix_settings.ts";
import {
  currentGeneration,
  generations,
  populateStore,
  pruneGenerations,
  removeTree,
  rootLayout,
  STORE_DIR,
  standardDirectories,
  switchTo,
  systemLinks,
} from "./root.ts";

export interface PrepareRootResult {
  config_dir: string;
  toplevel: string;
  init: string;
  initrd: string | null;
  root_dir: string;
  /** What the host serves to the guest over virtiofs instead of /nix/store. */
  store_dir: string;
  /** The generation the root now points to. */
  generation: string;
  paths: number;
  nar_size: number;
  files_linked: number;
  files_copied: number;
}

export async function main(
  config_dir: string,
  toplevel: string,
  root_dir: string = "",
  nix_settings: object = {},
): Promise<PrepareRootResult> {
  const settings = nixSettings(nix_settings);
  const dir = existingConfigDir(config_dir);
  if (typeof toplevel !== "string" || !/^\/nix\/store\/[a-z0-9]{32}-[^/]+$/.test(toplevel)) {
    throw new InputError("toplevel", toplevel, "must be a store path such as build_closure returns");
  }
  if (!existsSync(toplevel)) throw new InputError("toplevel", toplevel, "is not in the store (build it first)");
  const layout = rootLayout(dir, root_dir ?? "");
  const nix = withSettings(await locateNix(), settingsArgs(settings));
  return withConfigDirLock(dir, "prepare_root", async () => {
    const previous = currentGeneration(layout);
    const existing = generations(layout);
    const number = existing.length === 0 ? 1 : Number(existing.at(-1)?.split("/").at(-1)) + 1;
    const generation = join(layout.generationsDir, String(number));
    const partial = `${generation}.partial`;

    const infos = await pathInfo(nix, [toplevel], { recursive: true });
    const paths = infos.map((i) => i.path);
    log.info(`preparing ${layout.rootDir} (generation ${number}) with ${paths.length} store paths`);
    try {
      standardDirectories(partial);
      const stats = populateStore(partial, paths, previous);
      await loadDb(nix, `local?root=${partial}`, await dumpDb(nix, paths));
      systemLinks(partial, toplevel, new Set(paths));
      renameSync(partial, generation);
      switchTo(layout, generation);
      const removed = pruneGenerations(layout, [generation, ...(previous ? [previous] : [])]);
      log.info(
        `root ${layout.rootDir} -> ${generation}: ${stats.linked} files linked, ${stats.copied} copied, ` +
          `${stats.reused} paths reused from the previous generation${removed.length > 0 ? `; removed ${removed.join(", ")}` : ""}`,
      );
      const boot = readBootInfo(toplevel);
      return {
        config_dir: dir,
        toplevel,
        init: boot.init,
        initrd: boot.initrd,
        root_dir: layout.rootDir,
        store_dir: join(layout.rootDir, STORE_DIR),
        generation,
        paths: paths.length,
        nar_size: infos.reduce((n, i) => n + i.narSize, 0),
        files_linked: stats.linked,
        files_copied: stats.copied,
      };
    } catch (error) {
      removeTree(partial);
      throw error;
    }
  });
}
