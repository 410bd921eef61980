// `nixos-closure demo`: the whole flow, offline, against the examples shipped
// with the tool (cli/demo.ts runs it).

import { withCommandContext } from "../command_context.ts";
import { defineCommand } from "../command_spec.ts";
import { runDemo } from "../demo.ts";
import { BUILD_OUTPUT, type BuildOutputFlags } from "../options.ts";
import { printResult } from "../output.ts";

export const demoCommand = defineCommand<BuildOutputFlags & { keep?: boolean }>({
  name: "demo",
  description:
    "the whole flow, offline, against the example library and stand-in nixpkgs shipped with this tool, " +
    "in a state directory of its own under the temp dir: render, lock, build, prepare the root, report",
  options: [
    ...BUILD_OUTPUT,
    { flags: "--keep", description: "keep the demo's state directory (its config dir, result and root)" },
  ],
  help: {
    examples: ["nixos-closure demo", "nixos-closure demo --keep -L"],
    environment: ["NIX_BIN", "NIX_CONFIG", "NO_COLOR", "TERM"],
  },
  run: ({ flags }) =>
    withCommandContext(flags, async (options) => printResult((await runDemo(options, flags.keep === true)).result, flags.json)),
});
