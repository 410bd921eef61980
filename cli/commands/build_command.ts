// `nixos-closure build`: render, lock and build (the whole flow), or only the
// build step; several --vm-name build one VM each and end with a table.
import { InputError } from "../../f/nix/lib/core/errors.ts";
import { defineCommand } from "../command_spec.ts";
import { buildMany, type FlowCommandFlags, runFlowSteps } from "../flow_commands.ts";
import { EXIT_CODES, FLOW_ENVIRONMENT } from "../help.ts";
import { BUILD_OUTPUT, CLOSURE, CONFIG_DIR, DELIVERY, GUEST, INPUT, NIX_BUILD, ROOT, UPDATE_LOCK, VM_NAMES } from "../options.ts";

type BuildFlags = Omit<FlowCommandFlags, "vmName"> & { vmName?: string[] };

export const buildCommand = defineCommand<BuildFlags>({
  name: "build",
  description: "render, lock and build (the whole flow); prints the result: config_dir, toplevel, init, initrd, ...",
  options: [
    INPUT,
    VM_NAMES,
    ...GUEST,
    ...CLOSURE,
    UPDATE_LOCK,
    ...NIX_BUILD,
    ...DELIVERY,
    ...ROOT,
    ...BUILD_OUTPUT,
    {
      flags: "--prepare-root",
      description: "then prepare a root whose store holds exactly the closure (serve its store_dir to the guest)",
    },
    { flags: "--dry-run", description: "only say what the build would build and fetch (the same as `plan`)" },
    { flags: "--only", description: "run only the build step, on an already rendered and locked config dir" },
    { ...CONFIG_DIR, description: "with --only: the config dir (default: the one of --vm-name)" },
  ],
  help: {
    examples: [
      "nixos-closure build --vm-name vm1 --override xfsprogs=$HOME/src/xfsprogs -L    (a git work tree: its tracked files)",
      "nixos-closure build --input vm1.json --prepare-root --json",
      "nixos-closure build --hostname-at-boot --vm-name xfs_crc --vm-name xfs_reflink    (one evaluation, one system)",
    ],
    environment: FLOW_ENVIRONMENT,
    exitCodes: [...EXIT_CODES, "  with several --vm-name: the highest code of the VMs' runs (an interrupt stops them all)"],
  },
  async run({ flags: given }) {
    const { vmName: names = [], ...flags } = given;
    if (flags.dryRun && flags.prepareRoot) {
      throw new InputError("--prepare-root", true, "cannot go with --dry-run: a dry run builds nothing to make a root of");
    }
    const steps = flags.only ? ["build_closure"] : flags.dryRun ? ["render_config", "lock_config", "build_closure"] : null;
    if (new Set(names).size > 1) {
      if (flags.configDir !== undefined)
        throw new InputError("--config-dir", flags.configDir, "names one VM's config dir: give one --vm-name with it");
      return buildMany(names, steps, flags, flags.dryRun === true);
    }
    return runFlowSteps(steps, { ...flags, vmName: names[0] }, flags.dryRun === true);
  },
});
