// `nixos-closure diff A [B]`: what changed between two systems.
import { formatClosureDiff } from "../../f/nix/lib/build/report.ts";
import { diffSystems } from "../../f/nix/lib/steps/vms.ts";
import { defineCommand } from "../command_spec.ts";
import { COMMON_ENVIRONMENT } from "../help.ts";
import { runHousekeeping } from "../housekeeping.ts";
import { HOUSEKEEPING_OUTPUT, type OutputFlags } from "../options.ts";

export const diffCommand = defineCommand<OutputFlags, [string, string | undefined]>({
  name: "diff",
  description: "what changed between two systems: VM names, VM@previous, or store paths; one VM: against its previous build",
  arguments: [
    { name: "<a>", description: "a VM, VM@previous or a store path", value: "vm" },
    { name: "[b]", description: "another one (default: a against its previous build)", value: "vm" },
  ],
  options: HOUSEKEEPING_OUTPUT,
  help: {
    examples: ["nixos-closure diff vm1    (against its previous build)", "nixos-closure diff vm1 vm2 --json"],
    environment: COMMON_ENVIRONMENT,
  },
  run: ({ args: [a, b], flags }) =>
    runHousekeeping(
      "diff",
      flags,
      async (context) => {
        const result = await diffSystems(context, a, b);
        process.stdout.write(
          flags.json
            ? `${JSON.stringify(result)}\n`
            : `${formatClosureDiff(result.from, result.to, result.diff, Number.POSITIVE_INFINITY).join("\n")}\n`,
        );
      },
      true,
    ),
});
