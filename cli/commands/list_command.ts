// `nixos-closure list`: the VMs of this worker slot (or of all), or only
// their names for shell completion.
import { listVms, vmNames } from "../../f/nix/lib/steps/vms.ts";
import { defineCommand } from "../command_spec.ts";
import { COMMON_ENVIRONMENT } from "../help.ts";
import { runHousekeeping } from "../housekeeping.ts";
import { HOUSEKEEPING_OUTPUT, type OutputFlags } from "../options.ts";
import { formatVms } from "../output.ts";

export const listCommand = defineCommand<OutputFlags & { allWorkers?: boolean; names?: boolean }>({
  name: "list",
  description: "the VMs of this worker slot: state, last build, toplevel, closure size, what only it keeps alive",
  options: [
    ...HOUSEKEEPING_OUTPUT,
    { flags: "--all-workers", description: "the VMs of every worker slot under WORKERS_DIR" },
    {
      flags: "--names",
      description: "only the names of this slot's VMs, one per line, asking Nix nothing (for shell completion)",
    },
  ],
  help: {
    examples: ["nixos-closure list", "nixos-closure list --all-workers --json"],
    environment: COMMON_ENVIRONMENT,
  },
  run: ({ flags }) =>
    runHousekeeping(
      "list",
      flags,
      async (context) => {
        if (flags.names) {
          for (const name of vmNames(context)) process.stdout.write(`${name}\n`);
          return;
        }
        const vms = await listVms(context, flags.allWorkers === true);
        // A terminal's width is kept to (short store paths, columns dropped); -v, a pipe and --json get everything.
        const fit = {
          columns: process.stdout.isTTY && !flags.verbose ? process.stdout.columns || 80 : null,
          fullPaths: flags.verbose === true || !process.stdout.isTTY,
        };
        process.stdout.write(flags.json ? `${JSON.stringify(vms)}\n` : formatVms(vms, fit));
      },
      true,
    ),
});
