// `nixos-closure gc`: remove the VMs not built for a while (what f/nix/remove
// does with older_than_days), then maybe collect the store's garbage.
import { InputError } from "../../f/nix/lib/core/errors.ts";
import { cleanUpVms } from "../../f/nix/lib/steps/vms.ts";
import { defineCommand } from "../command_spec.ts";
import { COMMON_ENVIRONMENT } from "../help.ts";
import { runHousekeeping } from "../housekeeping.ts";
import { HOUSEKEEPING_OUTPUT, type OutputFlags } from "../options.ts";
import { printCleanUp } from "../output.ts";

type GcFlags = OutputFlags & { olderThan: string; keep: string; collect?: boolean; dryRun?: boolean };

export const gcCommand = defineCommand<GcFlags>({
  name: "gc",
  description: "remove the VMs not built for a while (never one in use); --collect runs Nix's garbage collector",
  options: [
    ...HOUSEKEEPING_OUTPUT,
    {
      flags: "--older-than <age>",
      description: "remove VMs not built for this long: 30d, 12h (0d: every VM)",
      default: "30d",
    },
    { flags: "--keep <n>", description: "always keep the n most recent VMs", default: "0" },
    { flags: "--collect", description: "then run nix-store --gc" },
    { flags: "--dry-run", description: "only say what would be removed" },
  ],
  help: {
    examples: ["nixos-closure gc --older-than 30d --keep 5", "nixos-closure gc --older-than 12h --collect"],
    environment: COMMON_ENVIRONMENT,
  },
  run: ({ flags }) =>
    runHousekeeping("gc", flags, async (context) => {
      const age = /^(\d+(?:\.\d+)?)([dh])$/.exec(flags.olderThan);
      if (!age) throw new InputError("--older-than", flags.olderThan, "must be an age such as 30d or 12h");
      const days = Number(age[1]) / (age[2] === "h" ? 24 : 1);
      printCleanUp(
        await cleanUpVms(context, {
          olderThanDays: days,
          // As typed: digits only ("" is not 0).
          keep: flags.keep,
          collect: flags.collect === true,
          dryRun: flags.dryRun === true,
        }),
        flags.json,
      );
    }),
});
