/**
 * render_config: write the per-VM flake directory of f/nix/build.
 *
 * Equivalent shell commands:
 *
 *   dir=$WORKERS_DIR/$WORKER_INDEX/nix/$vm_name
 *   mkdir -p "$dir"
 *   sed 's|path:/path/to/nixos-flake|path:'"$VENDOR_DIR"'/nixos-flake|' \
 *     "$VENDOR_DIR/nixos-flake/templates/imageless/flake.nix" > "$dir/flake.nix"
 *   # (plus one `<pkg>-src = { ... flake = false; };` input per source override)
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
 * @param overrides Build a curated package (fio, xfstests, xfsprogs, libbpf-tools) from a directory or git URL: {pkg, src, ref?, attrs?}.
 * @param extra_overrides Like overrides, for any nixpkgs package name.
 * @param ssh_keys OpenSSH public key lines trusted for root and the user (the managed VM key is always added first).
 * @param user_name The unprivileged account in the guest.
 * @param home Share the operator's home into the guest (tag "home") and make it root's home.
 * @param home_dir The home to share (empty: $HOME when under /home/, else /home/kdevops).
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { withConfigDirLock } from "./dir_lock.ts";
import { configDirFor, layoutFromEnv, managedKeyPath, operatorHome } from "./environment.ts";
import { SetupError } from "./errors.ts";
import { writeFileAtomic } from "./files.ts";
import { FALLBACK_HOME, type OverrideInput, type ShareInput } from "./inputs.ts";
import * as log from "./log.ts";
import { pathFlakeRef, renderDefault, renderFlake } from "./render.ts";
import { composeGuest, readManagedKey } from "./validate.ts";

export interface RenderResult {
  config_dir: string;
  flake: string;
  default: string;
  nixos_flake: string;
  vm_name: string;
}

export async function main(
  vm_name: string = "nixos",
  profiles: ("build-tools" | "controller" | "devel" | "monitoring")[] | null = null,
  test_suites: ("blktests" | "fstests" | "gitr" | "ltp" | "mmtests" | "pynfs" | "selftests" | "sysbench")[] | null = null,
  shares: object = {},
  overrides: { pkg: string; src: string; ref?: string; attrs?: object }[] = [],
  extra_overrides: { pkg: string; src: string; ref?: string; attrs?: object }[] = [],
  ssh_keys: string[] = [],
  user_name: string = "kdevops",
  home: boolean = false,
  home_dir: string = "",
): Promise<RenderResult> {
  const layout = layoutFromEnv();
  const keyPath = managedKeyPath(layout);
  const guest = composeGuest(
    {
      vm_name,
      profiles,
      test_suites,
      shares: shares as Record<string, ShareInput> | null,
      overrides: overrides as OverrideInput[] | null,
      extra_overrides: extra_overrides as OverrideInput[] | null,
      ssh_keys,
      user_name,
      home,
      home_dir,
    },
    { managedKey: readManagedKey(keyPath), defaultHome: operatorHome(process.env, FALLBACK_HOME) },
  );

  const templatePath = join(layout.libraryDir, "templates", "imageless", "flake.nix");
  let template: string;
  try {
    template = readFileSync(templatePath, "utf8");
  } catch (error) {
    throw new SetupError(
      `cannot read the nixos-flake library's template ${templatePath} (${(error as Error).message}); ` +
        "vendor the library at $VENDOR_DIR/nixos-flake or point NIXOS_FLAKE_DIR at it",
    );
  }
  const flake = renderFlake(template, templatePath, layout.libraryDir, guest.overrides);
  const defaultNix = renderDefault(guest);

  const configDir = configDirFor(layout, guest.vmName);
  pathFlakeRef(configDir, "the config dir");
  // The lock file sits beside the config dir: its parent must exist first.
  mkdirSync(layout.nixDir, { recursive: true });
  await withConfigDirLock(configDir, "render_config", async () => {
    mkdirSync(configDir, { recursive: true });
    const written = [
      writeFileAtomic(join(configDir, "flake.nix"), flake) ? "flake.nix" : null,
      writeFileAtomic(join(configDir, "default.nix"), defaultNix) ? "default.nix" : null,
    ].filter((name) => name !== null);
    log.info(`config dir ${configDir}: ${written.length > 0 ? `wrote ${written.join(", ")}` : "unchanged"}`);
  });
  if (guest.sshKeys.length === 0) {
    log.warn(`no SSH key given and no managed key at ${keyPath}: the guest will accept no SSH key`);
  }
  log.file(join(configDir, "flake.nix"), flake);
  log.file(join(configDir, "default.nix"), defaultNix);

  return { config_dir: configDir, flake, default: defaultNix, nixos_flake: layout.libraryDir, vm_name: guest.vmName };
}
