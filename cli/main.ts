// nixos-closure: the f/nix/build flow from a command line, without Windmill.
// Same steps, same contract, same per-VM directory layout. The program is
// made from its commands' definitions, one module each in cli/commands/.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import type { CommandSpec } from "./command_spec.ts";
import { buildCommand } from "./commands/build_command.ts";
import { completionCommand } from "./commands/completion_command.ts";
import { demoCommand } from "./commands/demo_command.ts";
import { diffCommand } from "./commands/diff_command.ts";
import { gcCommand } from "./commands/gc_command.ts";
import { listCommand } from "./commands/list_command.ts";
import { lockCommand } from "./commands/lock_command.ts";
import { planCommand } from "./commands/plan_command.ts";
import { prepareRootCommand } from "./commands/prepare_root_command.ts";
import { removeCommand } from "./commands/remove_command.ts";
import { renderCommand } from "./commands/render_command.ts";
import { reportFailure } from "./failure.ts";
import { ROOT } from "./flow.ts";
import { addHelpFooter, PROGRAM_FOOTER } from "./help.ts";
import { joinNixOptionArgs, toArgument, toOption } from "./options.ts";

/** Every command, in the order --help lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  buildCommand,
  planCommand,
  prepareRootCommand,
  renderCommand,
  lockCommand,
  listCommand,
  removeCommand,
  gcCommand,
  diffCommand,
  demoCommand,
  completionCommand,
];

/** The version in package.json, beside cli/ and dist/ alike. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** The parser of the command line, made from the commands' definitions. */
export function program(): Command {
  const cli = new Command("nixos-closure")
    .description(
      "Build the NixOS system a test VM boots (imageless: tmpfs root, /nix/store and /lib/modules shared over " +
        "virtiofs), as the f/nix/build Windmill flow does on a worker. Config dirs live in " +
        "$WORKERS_DIR/$WORKER_INDEX/nix/<vm-name> (default WORKERS_DIR: $XDG_STATE_HOME/nixos-closure/workers, WORKER_INDEX: 0).",
    )
    .version(packageVersion(), "--version", "print the version and exit")
    .addHelpText("after", PROGRAM_FOOTER)
    .showHelpAfterError("(run nixos-closure --help for usage)")
    .exitOverride();
  for (const spec of COMMANDS) {
    const command = cli.command(spec.name).description(spec.description);
    for (const argument of spec.arguments ?? []) command.addArgument(toArgument(argument));
    for (const option of spec.options) command.addOption(toOption(option));
    // The parser calls an action with each argument, then the flags.
    const count = spec.arguments?.length ?? 0;
    command.action((...given: unknown[]) =>
      spec.run({ args: given.slice(0, count), flags: given[count] as object, commands: COMMANDS }),
    );
    addHelpFooter(command, spec.help).exitOverride().showHelpAfterError(`(run nixos-closure ${spec.name} --help for usage)`);
  }
  return cli;
}

/** Runs the CLI; returns the exit code: 0 success, 2 bad input, 1 Nix or other failure, 128 + n when interrupted by signal n. */
export async function run(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(joinNixOptionArgs(argv), { from: "user" });
    return 0;
  } catch (error) {
    return reportFailure(error, argv);
  }
}
