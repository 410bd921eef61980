/**
 * render_config: write the per-VM flake directory of f/nix/build.
 *
 * Equivalent shell commands:
 *
 *   dir=$WORKERS_DIR/$WORKER_INDEX/nix/$vm_name
 *   mkdir -p "$dir"
 *   sed 's|path:/path/to/nixos-flake|path:'"$VENDOR_DIR"'/nixos-flake|' \
 *     "$VENDOR_DIR/nixos-flake/templates/imageless/flake.nix" > "$dir/flake.nix"
 *   # (plus one `<pkg>-src = { ... flake = false; };` input per source override; a git work tree's
 *   #  is { type = "git"; url = "file://$src"; rev = "$rev"; ... }, its tracked files as they are:
 *   #  rev=$(git -C "$src" stash create); rev=${rev:-$(git -C "$src" rev-parse HEAD)})
 *   $EDITOR "$dir/default.nix"   # imports, hostName, user, keys, shares, overlays
 *   cat "$dir/flake.nix" "$dir/default.nix"
 *
 * Bad input is reported (field and value) before anything is written; files
 * whose content did not change are not rewritten.
 *
 * @param vm_name Host name of the guest and name of its config dir (letters, digits, '-', '_'; at most 63).
 * @param profiles Module sets to import (null: devel, build-tools, monitoring; []: none). monitoring and controller are also enabled.
 * @param test_suites Test suites to install (null: all eight; []: none). fstests adds the /var/lib/xfstests share.
 * @param shares virtiofs shares keyed by guest mount point: {"/mnt/x": {"tag": "x", "options": ["ro"]}}.
 * @param overrides Build a curated package (fio, xfstests, xfsprogs, libbpf-tools) from a directory or git URL: {pkg, src, kind?, ref?, attrs?}; a git work tree gives its tracked files (kind "path": the whole directory).
 * @param extra_overrides Like overrides, for any nixpkgs package name.
 * @param ssh_keys OpenSSH public key lines trusted for root and the user (the managed VM key is always added first).
 * @param user_name The unprivileged account in the guest.
 * @param home Share the operator's home into the guest (tag "home") and make it root's home.
 * @param home_dir The home to share (empty: $HOME when under /home/, else /home/kdevops).
 * @param hostname_at_boot Leave the host name out of the system (NixOS names it "unnamed") and return kernel_params ["systemd.hostname=<vm_name>"]: append them to the guest's kernel command line. VMs equal but for their name then share one evaluation and one closure.
 * @param nixos_flake The nixos-flake library: a directory or a flake reference (github:linux-kdevops/nixos-flake, git+file:///..., path:/...), fetched by Nix; empty: $NIXOS_FLAKE_DIR, else $VENDOR_DIR/nixos-flake, else github:linux-kdevops/nixos-flake.
 * @param flow_input The whole flow input, when the flow runs this step: checked first (unknown fields, the nix and root groups), so a bad field anywhere writes nothing.
 */

import { runStep } from "./lib/steps/context.ts";
import { type RenderResult, renderConfig } from "./lib/steps/rendering.ts";

type Override = { pkg: string; src: string; kind?: "git" | "path"; ref?: string; attrs?: object; optional?: boolean };

// runStep builds this step's context (lib/steps/context.ts): on a Windmill worker from this process
// (its environment, stderr, an interrupt signal); under withContextOptions, as the CLI and the tests call
// this main, from the options they give.
export async function main(
  vm_name: string = "nixos",
  profiles: ("build-tools" | "controller" | "devel" | "monitoring")[] | null = null,
  test_suites: ("blktests" | "fstests" | "gitr" | "ltp" | "mmtests" | "pynfs" | "selftests" | "sysbench")[] | null = null,
  shares: object = {},
  overrides: Override[] = [],
  extra_overrides: Override[] = [],
  ssh_keys: string[] = [],
  user_name: string = "kdevops",
  home: boolean = true,
  home_dir: string = "",
  hostname_at_boot: boolean = false,
  nixos_flake: string = "",
  flow_input: object = {},
): Promise<RenderResult> {
  return runStep("render_config", null, (context) =>
    renderConfig(context, flow_input, {
      vm_name,
      profiles,
      test_suites,
      shares,
      overrides,
      extra_overrides,
      ssh_keys,
      user_name,
      home,
      home_dir,
      hostname_at_boot,
      nixos_flake,
    }),
  );
}
