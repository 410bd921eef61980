// The one place a command's context is made. Every command runs its work
// under withContextOptions (lib/steps/context.ts), and the library's runStep
// builds each step's context from what is given here, as a Windmill main's
// runStep builds it from the worker's process: the flow commands through the
// flow's own mains, the housekeeping commands by calling runStep themselves.
import { newNixFacts } from "../f/nix/lib/nix/locate.ts";
import {
  type ContextOptions,
  interruptSignal,
  standaloneEnv,
  type Vocabulary,
  withContextOptions,
} from "../f/nix/lib/steps/context.ts";
import type { BuildOutputFlags } from "./options.ts";
import { cliLogger } from "./output.ts";

/** Each Nix is asked its version and settings once per CLI run, whatever the steps and VMs it runs. */
const NIX_FACTS = newNixFacts();

/** Messages name the commands and flags of the CLI, not Windmill's steps and variables. */
export const CLI_WORDS: Vocabulary = {
  step: (name) =>
    ({
      render_config: "nixos-closure render",
      lock_config: "nixos-closure lock",
      build_closure: "nixos-closure build",
      prepare_root: "nixos-closure prepare-root",
    })[name],
  library: "--nixos-flake",
  unfetchedLibrary:
    "give a checkout with --nixos-flake DIR, or put one there ($VENDOR_DIR/nixos-flake); " +
    "`nixos-closure demo` shows the whole flow offline, against an example library",
};

/**
 * Runs a command's `work` with the context options of a CLI run: the
 * environment outside Windmill (state under $XDG_STATE_HOME), the logger and
 * output its flags ask for, Ctrl-C and SIGTERM as the abort signal, and the
 * CLI's words. Steps called inside take their context from them.
 */
export async function withCommandContext<T>(flags: BuildOutputFlags, work: (options: ContextOptions) => Promise<T>): Promise<T> {
  const interrupt = interruptSignal();
  const env = standaloneEnv();
  const options: ContextOptions = {
    env,
    log: cliLogger(flags, env),
    signal: interrupt.signal,
    words: CLI_WORDS,
    nixFacts: NIX_FACTS,
    output: { buildLogs: flags.printBuildLogs === true, chatter: flags.verbose === true, showTrace: flags.showTrace === true },
    ...(flags.progress === false ? { progress: "off" as const } : {}),
  };
  try {
    return await withContextOptions(options, () => work(options));
  } finally {
    interrupt.dispose();
  }
}
