/**
 * prepare_root: a root directory whose store holds exactly the built closure.
 *
 * Serve `store_dir` to the guest over virtiofs (tag "store") instead of the
 * host's /nix/store: the guest then sees only its own closure, and the root
 * can be copied to another host. Equivalent shell commands:
 *
 *   new=$config_dir.roots/N.partial
 *   mkdir -p $new/{dev,proc,sys,etc,run,home,var,bin,root,tmp} $new/nix/store ...   # modes as in nixos-prepare-root
 *   cp -al $(nix path-info -r $toplevel $closures) $new/nix/store/                 # hard links; copies across filesystems
 *   nix-store --dump-db $(nix path-info -r $toplevel $closures) | nix-store --store "local?root=$new" --load-db
 *   nix-store --store "local?root=$new" --import < $closure_file                    # each closure file
 *   ln -s $(realpath $toplevel/sw/bin/sh) $new/bin/sh                               # and the profiles, etc/NIXOS
 *   mv $new $config_dir.roots/N && ln -sfn $config_dir.roots/N $root_dir            # atomic switch
 *
 * Needs no root and no chroot. The root is a link switched atomically to a
 * complete new generation: an interrupted run keeps the last complete root,
 * and the previous generation stays until the next run, so a VM served it
 * keeps its files. Paths already in the previous generation are linked from
 * there; the rest are hard-linked from /nix/store when on the same
 * filesystem, else copied (with reflinks where the filesystem has them).
 *
 * With nix_build the root is instead a store path built by a derivation
 * (nix build -f <its expression> --argstr spec <data.json>): the same
 * closures give the same path on every Nix version; it carries
 * /nix-path-registration for `nix-store --load-db` at first boot.
 *
 * @param config_dir The config dir of the build (render_config's result).
 * @param toplevel The system to put in the root (build_closure's result; empty: the config dir's last build, read under its lock).
 * @param root_dir Where the root appears (empty: <config_dir>/root, a link into <config_dir>.roots).
 * @param closures Store paths whose closures go into the root beside the system's (e.g. nix itself, test data).
 * @param closure_files Files written by `nix-store --export $(nix-store -qR PATH)`, imported into the root's store.
 * @param channel A store path set as root's channels profile (root/.nix-defexpr/channels), as nixos-prepare-root does.
 * @param nix_build Build the root with Nix as a store path (reproducible, to ship) instead of hard-linking it (to serve here).
 * @param nix_settings The flow's nix group (options apply to the Nix calls made here).
 * @param render_id render_config's render_id: the step stops, changing nothing, when another run has rendered the VM with other inputs since. Empty: take whatever the config dir holds.
 */
import { runStep } from "./lib/steps/context.ts";
import { type PrepareRootResult, prepareRoot } from "./lib/steps/root_preparation.ts";

// runStep builds this step's context (lib/steps/context.ts): on a Windmill worker from this process
// (its environment, stderr, an interrupt signal); under withContextOptions, as the CLI and the tests call
// this main, from the options they give.
export async function main(
  config_dir: string,
  toplevel: string = "",
  root_dir: string = "",
  closures: string[] = [],
  closure_files: string[] = [],
  channel: string = "",
  nix_build: boolean = false,
  nix_settings: object = {},
  render_id: string = "",
): Promise<PrepareRootResult> {
  return runStep("prepare_root", nix_settings, (context) =>
    prepareRoot(
      context,
      config_dir,
      toplevel ?? "",
      root_dir ?? "",
      { closures, closure_files, channel, nix_build },
      render_id ?? "",
    ),
  );
}
