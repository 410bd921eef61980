// `nixos-closure prepare-root`: the prepare_root step alone, on the config
// dir's last build.
import { defineCommand } from "../command_spec.ts";
import { type FlowCommandFlags, runFlowSteps } from "../flow_commands.ts";
import { COMMON_ENVIRONMENT } from "../help.ts";
import { CONFIG_DIR, INPUT, OUTPUT, ROOT, VM_NAME } from "../options.ts";

export const prepareRootCommand = defineCommand<FlowCommandFlags>({
  name: "prepare-root",
  description: "prepare a closure-only root from the config dir's last build (its result link)",
  options: [INPUT, VM_NAME, CONFIG_DIR, ...ROOT, ...OUTPUT],
  help: {
    examples: [
      "nixos-closure prepare-root --vm-name vm1 --root-dir /srv/vm1-root",
      "nixos-closure prepare-root --vm-name vm1 --closure $(readlink -f $(command -v nix))/../..",
      "nixos-closure prepare-root --vm-name vm1 --nix-build --json",
    ],
    environment: COMMON_ENVIRONMENT,
  },
  run: ({ flags }) => runFlowSteps(["prepare_root"], { ...flags, prepareRoot: true }),
});
