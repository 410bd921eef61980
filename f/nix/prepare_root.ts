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
 * @param toplevel The system to put in the root (build_closure's result; empty: the config dir's last build, read under its lock).
 * @param root_dir Where the root appears (empty: <config_dir>/root, a link into <config_dir>.roots).
 * @param nix_settings The flow's nix group (options apply to the Nix calls made here).
 */
import { runStep } from "./lib/steps/context.ts";
import { type PrepareRootResult, prepareRoot } from "./lib/steps/prepare_root.ts";

export async function main(
  config_dir: string,
  toplevel: string = "",
  root_dir: string = "",
  nix_settings: object = {},
): Promise<PrepareRootResult> {
  return runStep("prepare_root", nix_settings, (context) => prepareRoot(context, config_dir, toplevel ?? "", root_dir ?? ""));
}
