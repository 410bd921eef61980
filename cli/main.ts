// nixos-closure: the f/nix/build flow from a command line, without Windmill.
// Same steps, same contract, same per-VM directory layout.
import { existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { Argument, Command, CommanderError, Option } from "commander";
import { formatClosureDiff } from "../f/nix/lib/build/report.ts";
import { InputError, Interrupted } from "../f/nix/lib/core/errors.ts";
import { fileSystemMessage, isFileSystemError, makeDirs } from "../f/nix/lib/core/files.ts";
import type { Env } from "../f/nix/lib/core/process.ts";
import { nixSettings } from "../f/nix/lib/nix/settings.ts";
import {
  type Context,
  type ContextOptions,
  createContext,
  interruptSignal,
  standaloneEnv,
  type Vocabulary,
  withContextOptions,
} from "../f/nix/lib/steps/context.ts";
import { checkFlowInput } from "../f/nix/lib/steps/flow_input.ts";
import { configDirOf } from "../f/nix/lib/steps/render_config.ts";
import { cleanUpVms, diffSystems, listVms, vmNames } from "../f/nix/lib/steps/vms.ts";
import { withDirLock } from "../f/nix/lib/worker/dir_lock.ts";
import { completionScript, SHELLS, type Shell } from "./completion.ts";
import { runDemo } from "./demo.ts";
import { type FlowInput, loadFlow, type Results, ROOT, runFlow, runInProcess } from "./flow.ts";
import { FLAG_OF_FIELD, type FlowFlags, flowInputFromFlags } from "./flow_input.ts";
import { addHelpFooter, PROGRAM_FOOTER } from "./help.ts";
import {
  addBuildOutputOptions,
  addClosureOptions,
  addConfigDirOption,
  addDeliveryOptions,
  addGuestOptions,
  addInputOption,
  addNixBuildOptions,
  addNixOptionOption,
  addOutputOptions,
  addRootOptions,
  addUpdateLockOption,
  addVmNameOption,
  type BuildOutputFlags,
  joinNixOptionArgs,
  type OutputFlags,
  vmArgument,
} from "./options.ts";
import { cliLogger, errorStyle, formatVms, printCleanUp, printResult } from "./output.ts";

const EXIT_FAILURE = 1;
const EXIT_BAD_INPUT = 2;

interface CommonFlags extends FlowFlags, BuildOutputFlags {
  configDir?: string;
  only?: boolean;
  dryRun?: boolean;
}

function asList(value: unknown): ({ pkg?: unknown; optional?: unknown } | null)[] {
  return Array.isArray(value) ? value : [];
}

/** The version in package.json, beside cli/ and dist/ alike. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** What the flags ask a build to show besides its progress. */
function outputOptions(flags: BuildOutputFlags): Pick<ContextOptions, "output" | "progress"> {
  return {
    output: { buildLogs: flags.printBuildLogs === true, chatter: flags.verbose === true, showTrace: flags.showTrace === true },
    ...(flags.progress === false ? { progress: "off" as const } : {}),
  };
}

/** What -v adds to the housekeeping commands (they render no files). */
const HOUSEKEEPING_VERBOSE = "also show the Nix used and Nix's own messages";

/** The housekeeping commands' arguments, named as the command line has them. */
const ARGUMENT_WORDS: Readonly<Record<string, string>> = { vm_name: "VM", system: "system" };

/** Runs a housekeeping command with a context of the CLI's own. */
async function withCliContext(name: string, flags: OutputFlags, work: (context: Context) => Promise<void>): Promise<void> {
  const interrupt = interruptSignal();
  const env = standaloneEnv();
  try {
    await work(
      createContext(name, nixSettings(null), {
        env,
        log: cliLogger(flags, env),
        signal: interrupt.signal,
        words: CLI_WORDS,
      }),
    );
  } catch (error) {
    const word =
      error instanceof InputError && Object.hasOwn(ARGUMENT_WORDS, error.field) ? ARGUMENT_WORDS[error.field] : undefined;
    throw word && error instanceof InputError ? new InputError(word, error.value, error.reason) : error;
  } finally {
    interrupt.dispose();
  }
}

/** Messages name the commands and flags of the CLI, not Windmill's steps and variables. */
const CLI_WORDS: Vocabulary = {
  step: (name) =>
    ({
      render_config: "nixos-closure render",
      lock_config: "nixos-closure lock",
      build_closure: "nixos-closure build",
      prepare_root: "nixos-closure prepare-root",
    })[name],
  library: "--nixos-flake",
};

/** The flag that sets a field of the flow input, if one does. */
function fieldFlag(group: string, field: string): string | undefined {
  const flags: Record<string, Record<string, string>> = FLAG_OF_FIELD;
  return Object.hasOwn(flags, group) && Object.hasOwn(flags[group] ?? {}, field) ? flags[group]?.[field] : undefined;
}

/** prepare_root's parameters that are fields of the flow input's root group: what the step checks once it runs. */
const ROOT_STEP_FIELDS: Readonly<Record<string, string>> = {
  closures: "root.closures",
  closure_files: "root.closure_files",
  channel: "root.channel",
  root_dir: "root.dir",
};

/**
 * Names a bad field the way the user gave it: the flag (`--profile`), or
 * the field of the --input file; Windmill's field paths are for Windmill.
 */
function inCallersWords(error: InputError, flags: CommonFlags): InputError {
  const [, stepField = "", index = ""] = /^(\w+)(.*)$/.exec(error.field) ?? [];
  if (Object.hasOwn(ROOT_STEP_FIELDS, stepField)) {
    return inCallersWords(new InputError(`${ROOT_STEP_FIELDS[stepField]}${index}`, error.value, error.reason), flags);
  }
  const match = /^(\w+)\.(\w+)(.*)$/.exec(error.field);
  if (!match) return flags.input ? new InputError(`--input ${flags.input}: ${error.field}`, error.value, error.reason) : error;
  const [, group = "", field = "", rest = ""] = match;
  const byFlag = flowInputFromFlags({ ...flags, input: undefined })[group]?.[field] !== undefined;
  const flag = fieldFlag(group, field);
  if (byFlag && flag) {
    // A list's element is the flag's own value; a part of one (overrides[0].src) is named after the flag.
    const part = /^\[\d+\]$/.test(rest) || rest === "" ? "" : ` (${field}${rest})`;
    // A reason pointing at another field ("use nix.cores") points at its flag.
    const reason = error.reason.replace(/\b(\w+)\.(\w+)\b/g, (name, g: string, f: string) => fieldFlag(g, f) ?? name);
    return new InputError(`${flag}${part}`, error.value, reason);
  }
  return flags.input ? new InputError(`--input ${flags.input}: ${error.field}`, error.value, error.reason) : error;
}

/**
 * Runs the flow's modules (those named, or all) in this process, with a
 * context of the CLI's own: the environment outside Windmill, the flags'
 * library and progress choice, stderr, and Ctrl-C.
 */
async function runSteps(steps: string[] | null, flags: CommonFlags, planOnly = false): Promise<void> {
  const input = flowInputFromFlags(flags);
  const env = standaloneEnv();
  // The whole input is checked before any step runs: a bad nix or root field writes nothing.
  try {
    await runCheckedSteps(steps, flags, input, env, planOnly);
  } catch (error) {
    throw error instanceof InputError ? inCallersWords(error, flags) : error;
  }
}

async function runCheckedSteps(
  steps: string[] | null,
  flags: CommonFlags,
  input: FlowInput,
  env: Env,
  planOnly: boolean,
): Promise<void> {
  checkFlowInput(env, input);
  // Steps run alone get the config dir earlier steps would have returned
  // (prepare_root then takes the toplevel of the dir's last build itself).
  const configDir =
    steps && !steps.includes("render_config") ? (flags.configDir ?? configDirOf(env, input.guest?.vm_name)) : null;
  // A VM named that was never rendered is a wrong name, not a broken worker.
  if (configDir && flags.configDir === undefined && !existsSync(join(configDir, "flake.nix"))) {
    throw new InputError(
      "guest.vm_name",
      input.guest?.vm_name,
      `is not a VM of this worker (no config dir at ${configDir}): run ${CLI_WORDS.step("render_config")} first`,
    );
  }
  const optionalOverrides = [...asList(input.closure?.overrides), ...asList(input.closure?.extra_overrides)]
    .filter((o) => o?.optional === true)
    .map((o) => o?.pkg);
  const results: Results = configDir
    ? {
        render_config: { config_dir: configDir, optional_overrides: optionalOverrides },
        build_closure: { config_dir: configDir },
      }
    : {};
  const extraArgs: Record<string, Record<string, unknown>> = planOnly ? { build_closure: { plan_only: true } } : {};
  const interrupt = interruptSignal();
  // The whole run holds the VM's config dir: another run of the same VM can
  // never re-render it between this run's render and its build.
  const runDir = configDir ?? configDirOf(env, input.guest?.vm_name);
  const log = cliLogger(flags, env);
  const context = createContext("nixos-closure", nixSettings(null), { env, log, signal: interrupt.signal });
  const options: ContextOptions = {
    env,
    log,
    signal: interrupt.signal,
    words: CLI_WORDS,
    heldLocks: new Set([runDir]),
    ...outputOptions(flags),
  };
  try {
    makeDirs(dirname(runDir));
    const run = await withDirLock(runDir, context, () =>
      withContextOptions(options, () =>
        runFlow(loadFlow(), input, runInProcess, { ...(steps ? { only: steps } : {}), results, extraArgs }),
      ),
    );
    printResult(run.result, flags.json);
  } finally {
    interrupt.dispose();
  }
}

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

  const flowCommand = (name: string) => addInputOption(cli.command(name));

  addBuildOutputOptions(
    addRootOptions(
      addDeliveryOptions(addNixBuildOptions(addUpdateLockOption(addClosureOptions(addGuestOptions(flowCommand("build")))))),
    ),
  )
    .description("render, lock and build (the whole flow); prints the result: config_dir, toplevel, init, initrd, ...")
    .option("--prepare-root", "then prepare a root whose store holds exactly the closure (serve its store_dir to the guest)")
    .option("--dry-run", "only say what the build would build and fetch (the same as `plan`)")
    .option("--only", "run only the build step, on an already rendered and locked config dir")
    .addOption(new Option("--config-dir <dir>", "with --only: the config dir (default: the one of --vm-name)"))
    .action((flags: CommonFlags) => {
      if (flags.dryRun && flags.prepareRoot) {
        throw new InputError("--prepare-root", true, "cannot go with --dry-run: a dry run builds nothing to make a root of");
      }
      const steps = flags.only ? ["build_closure"] : flags.dryRun ? ["render_config", "lock_config", "build_closure"] : null;
      return runSteps(steps, flags, flags.dryRun === true);
    });

  addOutputOptions(addNixBuildOptions(addUpdateLockOption(addClosureOptions(addGuestOptions(flowCommand("plan"))))))
    .description("render and lock, then say what a build would build and fetch (nix build --dry-run), building nothing")
    .action((flags: CommonFlags) => runSteps(["render_config", "lock_config", "build_closure"], flags, true));

  addOutputOptions(
    addRootOptions(
      addConfigDirOption(addVmNameOption(flowCommand("prepare-root")), "the config dir (default: the one of --vm-name)"),
    ),
  )
    .description("prepare a closure-only root from the config dir's last build (its result link)")
    .action((flags: CommonFlags) => runSteps(["prepare_root"], { ...flags, prepareRoot: true }));

  addOutputOptions(addNixOptionOption(addClosureOptions(addGuestOptions(flowCommand("render")))))
    .description("write flake.nix and default.nix into the VM's config dir (-v shows them)")
    .action((flags: CommonFlags) => runSteps(["render_config"], flags));

  addOutputOptions(
    addNixOptionOption(
      addUpdateLockOption(
        addConfigDirOption(addVmNameOption(flowCommand("lock")), "the config dir (default: the one of --vm-name)"),
      ),
    ),
  )
    .description("lock the config dir's flake inputs (source overrides every time; the library with --update-lock)")
    .action((flags: CommonFlags) => runSteps(["lock_config"], flags));

  addOutputOptions(cli.command("list"), HOUSEKEEPING_VERBOSE)
    .description("the VMs of this worker slot: state, last build, toplevel, closure size, what only it keeps alive")
    .option("--all-workers", "the VMs of every worker slot under WORKERS_DIR")
    .option("--names", "only the names of this slot's VMs, one per line, asking Nix nothing (for shell completion)")
    .action((flags: OutputFlags & { allWorkers?: boolean; names?: boolean }) =>
      withCliContext("list", flags, async (context) => {
        if (flags.names) {
          for (const name of vmNames(context)) process.stdout.write(`${name}\n`);
          return;
        }
        const vms = await listVms(context, flags.allWorkers === true);
        if (flags.json) process.stdout.write(`${JSON.stringify(vms)}\n`);
        else process.stdout.write(formatVms(vms));
      }),
    );

  addOutputOptions(cli.command("remove"), HOUSEKEEPING_VERBOSE)
    .description("remove VMs: config dir, lock, GC roots, prepared roots (only ours); refuses a VM in use")
    .addArgument(vmArgument("<vm...>", "VM names"))
    .option("--dry-run", "only say what would be removed")
    .option("--keep-root", "keep the VMs' prepared roots")
    .action((names: string[], flags: OutputFlags & { dryRun?: boolean; keepRoot?: boolean }) =>
      withCliContext("remove", flags, async (context) => {
        printCleanUp(
          await cleanUpVms(context, { names, dryRun: flags.dryRun === true, keepRoot: flags.keepRoot === true }),
          flags.json,
        );
      }),
    );

  addOutputOptions(cli.command("gc"), HOUSEKEEPING_VERBOSE)
    .description("remove the VMs not built for a while (never one in use); --collect runs Nix's garbage collector")
    .option("--older-than <age>", "remove VMs not built for this long: 30d, 12h (0d: every VM)", "30d")
    .option("--keep <n>", "always keep the n most recent VMs", "0")
    .option("--collect", "then run nix-store --gc")
    .option("--dry-run", "only say what would be removed")
    .action((flags: OutputFlags & { olderThan: string; keep: string; collect?: boolean; dryRun?: boolean }) =>
      withCliContext("gc", flags, async (context) => {
        const age = /^(\d+(?:\.\d+)?)([dh])$/.exec(flags.olderThan);
        if (!age) throw new InputError("--older-than", flags.olderThan, "must be an age such as 30d or 12h");
        const days = Number(age[1]) / (age[2] === "h" ? 24 : 1);
        const keep = Number(flags.keep);
        if (!Number.isSafeInteger(keep) || keep < 0) throw new InputError("--keep", flags.keep, "must be a whole number >= 0");
        printCleanUp(
          await cleanUpVms(context, {
            olderThanDays: days,
            keep,
            collect: flags.collect === true,
            dryRun: flags.dryRun === true,
          }),
          flags.json,
        );
      }),
    );

  addOutputOptions(cli.command("diff"), HOUSEKEEPING_VERBOSE)
    .description("what changed between two systems: VM names, VM@previous, or store paths; one VM: against its previous build")
    .addArgument(vmArgument("<a>", "a VM, VM@previous or a store path"))
    .addArgument(vmArgument("[b]", "another one (default: a against its previous build)"))
    .action((a: string, b: string | undefined, flags: OutputFlags) =>
      withCliContext("diff", flags, async (context) => {
        const result = await diffSystems(context, a, b);
        if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else
          process.stdout.write(
            `${formatClosureDiff(result.from, result.to, result.diff, Number.POSITIVE_INFINITY).join("\n")}\n`,
          );
      }),
    );

  addBuildOutputOptions(cli.command("demo"))
    .description(
      "the whole flow, offline, against the example library and stand-in nixpkgs shipped with this tool, " +
        "in a state directory of its own under the temp dir: render, lock, build, prepare the root, report",
    )
    .option("--keep", "keep the demo's state directory (its config dir, result and root)")
    .action(async (flags: BuildOutputFlags & { keep?: boolean }) => {
      const interrupt = interruptSignal();
      try {
        const { result } = await runDemo(
          { log: cliLogger(flags, standaloneEnv()), signal: interrupt.signal, words: CLI_WORDS, ...outputOptions(flags) },
          flags.keep === true,
        );
        printResult(result, flags.json);
      } finally {
        interrupt.dispose();
      }
    });

  cli
    .command("completion")
    .description("print a shell completion script: bash, zsh or fish")
    .addArgument(new Argument("<shell>", "the shell").choices(SHELLS))
    .action((shell: Shell) => {
      process.stdout.write(completionScript(cli, shell));
    });

  for (const command of cli.commands)
    addHelpFooter(command).exitOverride().showHelpAfterError(`(run nixos-closure ${command.name()} --help for usage)`);
  return cli;
}

/** Runs the CLI; returns the exit code: 0 success, 2 bad input, 1 Nix or other failure, 128 + n when interrupted by signal n. */
export async function run(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(joinNixOptionArgs(argv), { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0; // --help, --version
      return EXIT_BAD_INPUT;
    }
    const style = errorStyle(argv, standaloneEnv());
    const prefix = style.red(style.bold("error:"));
    if (error instanceof Interrupted) {
      process.stderr.write(`${prefix} ${error.message}\n`);
      return 128 + constants.signals[error.signal];
    }
    if (error instanceof InputError) {
      process.stderr.write(`${prefix} bad input: ${error.message}\n`);
      return EXIT_BAD_INPUT;
    }
    if (isFileSystemError(error)) {
      process.stderr.write(`${prefix} ${fileSystemMessage(error)}\n`);
      return EXIT_FAILURE;
    }
    const known = error instanceof Error && ["SetupError", "NixError", "SpawnError"].includes(error.name);
    process.stderr.write(`${prefix} ${known ? (error as Error).message : ((error as Error)?.stack ?? String(error))}\n`);
    return EXIT_FAILURE;
  }
}
