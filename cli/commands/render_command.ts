// `nixos-closure render`: the render_config step alone.
import { defineCommand } from "../command_spec.ts";
import { type FlowCommandFlags, runFlowSteps } from "../flow_commands.ts";
import { COMMON_ENVIRONMENT } from "../help.ts";
import { CLOSURE, GUEST, INPUT, NIX_OPTION, OUTPUT, VM_NAME } from "../options.ts";

export const renderCommand = defineCommand<FlowCommandFlags>({
  name: "render",
  description: "write flake.nix and default.nix into the VM's config dir (-v shows them)",
  options: [INPUT, VM_NAME, ...GUEST, ...CLOSURE, ...NIX_OPTION, ...OUTPUT],
  help: {
    examples: [
      "nixos-closure render --vm-name vm1 --profile devel -v    (-v shows the files)",
      "nixos-closure render --input vm1.json --nixos-flake ~/src/nixos-flake",
      "nixos-closure render --vm-name vm1 --override xfsprogs=path:$HOME/src/xfsprogs    (the whole directory, not what git tracks)",
    ],
    environment: [...COMMON_ENVIRONMENT, "NIXOS_FLAKE_DIR", "VENDOR_DIR", "SYSTEM_DIR"],
  },
  run: ({ flags }) => runFlowSteps(["render_config"], flags),
});
