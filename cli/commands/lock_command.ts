// `nixos-closure lock`: the lock_config step alone, on a rendered config dir.
import { defineCommand } from "../command_spec.ts";
import { type FlowCommandFlags, runFlowSteps } from "../flow_commands.ts";
import { COMMON_ENVIRONMENT } from "../help.ts";
import { CONFIG_DIR, INPUT, NIX_OPTION, OUTPUT, UPDATE_LOCK, VM_NAME } from "../options.ts";

export const lockCommand = defineCommand<FlowCommandFlags>({
  name: "lock",
  description: "lock the config dir's flake inputs (source overrides every time; the library with --update-lock)",
  options: [INPUT, VM_NAME, CONFIG_DIR, UPDATE_LOCK, ...NIX_OPTION, ...OUTPUT],
  help: {
    examples: ["nixos-closure lock --vm-name vm1", "nixos-closure lock --vm-name vm1 --update-lock"],
    environment: COMMON_ENVIRONMENT,
  },
  run: ({ flags }) => runFlowSteps(["lock_config"], flags),
});
