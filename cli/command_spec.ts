// A command of the CLI as data: its name, arguments, flags (the groups of
// cli/options.ts), help footer, and what it runs. Each command is one module
// in cli/commands/; cli/main.ts makes the parser from them, and the
// completion scripts are made from the same definitions.
import type { CommandHelp } from "./help.ts";
import type { ArgumentSpec, OptionSpec } from "./options.ts";

/** What a command's run is given: its arguments in order, its flags by attribute name, and every command (for completion). */
export interface CommandCall<Flags, Args extends readonly unknown[]> {
  args: Args;
  flags: Flags;
  commands: readonly CommandSpec[];
}

export interface CommandSpec<Flags = object, Args extends readonly unknown[] = readonly unknown[]> {
  name: string;
  /** One line; the first is what completion shows. */
  description: string;
  arguments?: readonly ArgumentSpec[];
  options: readonly OptionSpec[];
  help: CommandHelp;
  run(call: CommandCall<Flags, Args>): Promise<void>;
}

/** A command with its flags' and arguments' types, among the others (whose types differ). */
export function defineCommand<Flags, Args extends readonly unknown[] = []>(spec: CommandSpec<Flags, Args>): CommandSpec {
  return spec as unknown as CommandSpec;
}
