// `nixos-closure plan`: render and lock, then what a build would build and
// fetch (nix build --dry-run), building nothing.
import { defineCommand } from "../command_spec.ts";
import { type FlowCommandFlags, runFlowSteps } from "../flow_commands.ts";
import { FLOW_ENVIRONMENT } from "../help.ts";
import { CLOSURE, GUEST, INPUT, NIX_BUILD, OUTPUT, UPDATE_LOCK, VM_NAME } from "../options.ts";

export const planCommand = defineCommand<FlowCommandFlags>({
  name: "plan",
  description: "render and lock, then say what a build would build and fetch (nix build --dry-run), building nothing",
  options: [INPUT, VM_NAME, ...GUEST, ...CLOSURE, UPDATE_LOCK, ...NIX_BUILD, ...OUTPUT],
  help: {
    examples: [
      "nixos-closure plan --vm-name vm1 --test-suite fstests",
      "nixos-closure build --vm-name vm1 --dry-run    (the same)",
    ],
    environment: FLOW_ENVIRONMENT,
  },
  run: ({ flags }) => runFlowSteps(["render_config", "lock_config", "build_closure"], flags, true),
});
