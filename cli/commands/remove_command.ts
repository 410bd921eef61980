// `nixos-closure remove VM...`: remove VMs by name (what f/nix/remove does
// with vm_names).
import { cleanUpVms } from "../../f/nix/lib/steps/vms.ts";
import { defineCommand } from "../command_spec.ts";
import { COMMON_ENVIRONMENT } from "../help.ts";
import { runHousekeeping } from "../housekeeping.ts";
import { HOUSEKEEPING_OUTPUT, type OutputFlags } from "../options.ts";
import { printCleanUp } from "../output.ts";

export const removeCommand = defineCommand<OutputFlags & { dryRun?: boolean; keepRoot?: boolean }, [string[]]>({
  name: "remove",
  description: "remove VMs: config dir, lock, GC roots, prepared roots (only ours); refuses a VM in use",
  arguments: [{ name: "<vm...>", description: "VM names", value: "vm" }],
  options: [
    ...HOUSEKEEPING_OUTPUT,
    { flags: "--dry-run", description: "only say what would be removed" },
    { flags: "--keep-root", description: "keep the VMs' prepared roots" },
  ],
  help: {
    examples: ["nixos-closure remove vm1 vm2 --dry-run", "nixos-closure remove vm1 --keep-root"],
    environment: COMMON_ENVIRONMENT,
  },
  run: ({ args: [names], flags }) =>
    runHousekeeping("remove", flags, async (context) =>
      printCleanUp(
        await cleanUpVms(context, { names, dryRun: flags.dryRun === true, keepRoot: flags.keepRoot === true }),
        flags.json,
      ),
    ),
});
