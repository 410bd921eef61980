// What the housekeeping commands (list, remove, gc, diff) share: their core
// (lib/steps/vms.ts) run through runStep, as the Windmill scripts f/nix/list
// and f/nix/remove run it, with the CLI's context; and a bad argument named
// as the command line has it. They call the core rather than those mains: the
// mains are Windmill forms (remove's one form is the CLI's remove and gc),
// and `list --names` and `diff` have none.
import { InputError } from "../f/nix/lib/core/errors.ts";
import type { Logger } from "../f/nix/lib/core/log.ts";
import { type Context, runStep } from "../f/nix/lib/steps/context.ts";
import { withCommandContext } from "./command_context.ts";
import type { OutputFlags } from "./options.ts";

/** The housekeeping core's fields, named as the command line has them (each VM to remove is one VM). */
const ARGUMENT_WORDS: Readonly<Record<string, string>> = { vm_name: "VM", system: "system", keep: "--keep" };

function argumentWord(field: string): string | undefined {
  return /^vm_names\[\d+\]$/.test(field) ? "VM" : Object.hasOwn(ARGUMENT_WORDS, field) ? ARGUMENT_WORDS[field] : undefined;
}

/**
 * Runs a housekeeping command's core with the CLI's context, as the step
 * `name`. A `query` (list, diff) changes nothing: the Nix commands it asks
 * are shown with -v only, so its answer is what the screen shows.
 */
export async function runHousekeeping<T>(
  name: string,
  flags: OutputFlags,
  work: (context: Context) => Promise<T>,
  query = false,
): Promise<T> {
  try {
    return await withCommandContext(flags, (options) => {
      if (query) options.log = commandsAtVerbose(options.log);
      return runStep(name, null, work);
    });
  } catch (error) {
    const word = error instanceof InputError ? argumentWord(error.field) : undefined;
    throw word && error instanceof InputError ? new InputError(word, error.value, error.reason) : error;
  }
}

/** The logger with each command it is told of shown only at -v. */
function commandsAtVerbose(log: Logger): Logger {
  return {
    info: (message) => log.info(message),
    detail: (message) => log.detail(message),
    warn: (message) => log.warn(message),
    command: (argv, env, stdinFile) => {
      if (log.verbosity === "verbose") log.command(argv, env, stdinFile);
    },
    file: (path, content) => log.file(path, content),
    write: (text) => log.write(text),
    verbosity: log.verbosity,
    terminal: log.terminal,
    style: log.style,
  };
}
