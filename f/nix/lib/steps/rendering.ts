// render_config's core: validate the guest input, render flake.nix and
// default.nix, and write them into the VM's config dir (only what changed).
import { join } from "node:path";
import { composeGuest } from "../config/guest.ts";
import type { RenderInput, WorkTreeSnapshot } from "../config/model.ts";
import { kernelParamsOf, renderDefault, renderFlake } from "../config/render.ts";
import { renderIdOf } from "../config/render_identity.ts";
import { snapshotWorkTree } from "../config/work_tree.ts";
import { SetupError } from "../core/errors.ts";
import { MAX_NIX_FILE_BYTES, makeDirs, readSmallFile, writeFileAtomic } from "../core/files.ts";
import { pathFlakeRef } from "../nix/flake_ref.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { configDirFor, managedKeyPath, workerLayout } from "../worker/layout.ts";
import { checkFlowInput, workerValidation } from "./checks.ts";
import type { Context } from "./context.ts";
import { libraryDir } from "./library.ts";

export interface RenderResult {
  config_dir: string;
  flake: string;
  default: string;
  nixos_flake: string;
  vm_name: string;
  /** The overrides allowed to reach nothing (build_closure takes them). */
  optional_overrides: string[];
  /** Which render the config dir holds: lock, build and prepare_root check it (another run may render the same VM). */
  render_id: string;
  /** For the guest's kernel command line: `systemd.hostname=<vm_name>` with hostname_at_boot, else none. */
  kernel_params: string[];
}

function readTemplate(context: Context, libraryDir: string): { path: string; text: string } {
  const path = join(libraryDir, "templates", "imageless", "flake.nix");
  try {
    return { path, text: readSmallFile(path, MAX_NIX_FILE_BYTES) };
  } catch (error) {
    throw new SetupError(
      `cannot read the nixos-flake library's template ${path} (${(error as Error).message}); ` +
        `point ${context.words.library} at a checkout of the library`,
    );
  }
}

/** Renders a VM's config dir; `flowInput`, when the flow passes it, is checked whole first. */
export async function renderConfig(context: Context, flowInput: unknown, input: RenderInput): Promise<RenderResult> {
  const { log } = context;
  checkFlowInput(context.env, flowInput);
  const layout = workerLayout(context.env);
  const keyPath = managedKeyPath(layout);
  const validation = workerValidation(context.env, layout);
  const guest = composeGuest(input, validation);

  const library = await libraryDir(context, input.nixos_flake);
  const template = readTemplate(context, library);
  const snapshots = new Map<string, WorkTreeSnapshot>();
  for (const o of guest.overrides.filter((o) => o.workTree)) {
    const taken = await snapshotWorkTree(
      context,
      { field: `${o.field}.src`, subject: `override ${o.pkg}`, dir: o.src },
      validation.uid,
    );
    snapshots.set(`${o.pkg}-src`, taken.snapshot);
    if (taken.warning !== null) guest.warnings.push(taken.warning);
  }
  for (const warning of guest.warnings) log.warn(warning);
  const flake = renderFlake(template.text, template.path, library, guest.overrides, snapshots);
  const defaultNix = renderDefault(guest);

  const configDir = configDirFor(layout, guest.vmName);
  pathFlakeRef(configDir, "the config dir");
  // The lock file sits beside the config dir: its parent must exist first.
  makeDirs(layout.nixDir);
  await withDirLock(configDir, context, async () => {
    makeDirs(configDir);
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

  return {
    config_dir: configDir,
    flake,
    default: defaultNix,
    nixos_flake: library,
    vm_name: guest.vmName,
    optional_overrides: guest.overrides.filter((o) => o.optional).map((o) => o.pkg),
    render_id: renderIdOf(flake, defaultNix),
    kernel_params: kernelParamsOf(defaultNix, guest.vmName),
  };
}
