// nixos-closure: the f/nix/build flow from a command line, without Windmill.
// Same steps, same contract, same per-VM directory layout.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Argument, Command, CommanderError, Option } from "commander";
import { formatClosureDiff } from "../f/nix/lib/build/report.ts";
import { InputError, Interrupted, ToolError } from "../f/nix/lib/core/errors.ts";
import { fileSystemMessage, isFileSystemError, makeDirs, realPathOf } from "../f/nix/lib/core/files.ts";
import type { Env } from "../f/nix/lib/core/process.ts";
import type { NixVersions } from "../f/nix/lib/nix/locate.ts";
import { nixSettings } from "../f/nix/lib/nix/settings.ts";
import { checkFlowInput, configDirOf } from "../f/nix/lib/steps/checks.ts";
import {
  type Context,
  type ContextOptions,
  createContext,
  interruptSignal,
  standaloneEnv,
  type Vocabulary,
  withContextOptions,
} from "../f/nix/lib/steps/context.ts";
import { cleanUpVms, diffSystems, listVms, vmNames } from "../f/nix/lib/steps/vms.ts";
import { withDirLock } from "../f/nix/lib/worker/dir_lock.ts";
import { completionScript, SHELLS, type Shell } from "./completion.ts";
import { runDemo } from "./demo.ts";
import { type FlowInput, loadFlow, type Results, ROOT, runFlow, runInProcess } from "./flow.ts";
import { addHelpFooter, PROGRAM_FOOTER } from "./help.ts";
import { FLAG_OF_FIELD, type FlowFlags, flowInputFromFlags } from "./input_from_flags.ts";
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
import { cliLogger, errorStyle, formatVmRuns, formatVms, printCleanUp, printResult, type VmRunRow } from "./output.ts";

/** Each Nix is asked its version once per CLI run, whatever the steps and VMs it runs. */
const NIX_VERSIONS: NixVersions = new Map();

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

/** The housekeeping commands' arguments, named as the command line has them (each VM to remove is one VM). */
const ARGUMENT_WORDS: Readonly<Record<string, string>> = { vm_name: "VM", system: "system", keep: "--keep" };

function argumentWord(field: string): string | undefined {
  return /^vm_names\[\d+\]$/.test(field) ? "VM" : Object.hasOwn(ARGUMENT_WORDS, field) ? ARGUMENT_WORDS[field] : undefined;
}

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
    const word = error instanceof InputError ? argumentWord(error.field) : undefined;
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
  unfetchedLibrary:
    "give a checkout with --nixos-flake DIR, or put one there ($VENDOR_DIR/nixos-flake); " +
    "`nixos-closure demo` shows the whole flow offline, against an example library",
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
  printResult(await runStepsOf(steps, flags, planOnly), flags.json);
}

/** The flow's result of one VM's run of `steps` (all when null), its errors in the caller's words. */
async function runStepsOf(steps: string[] | null, flags: CommonFlags, planOnly: boolean): Promise<Record<string, unknown>> {
  const input = flowInputFromFlags(flags);
  const env = standaloneEnv();
  // The whole input is checked before any step runs: a bad nix or root field writes nothing.
  try {
    return await runCheckedSteps(steps, flags, input, env, planOnly);
  } catch (error) {
    throw error instanceof InputError ? inCallersWords(error, flags) : error;
  }
}

/** Ends the CLI with this exit code, its messages already shown. */
class ExitCode extends Error {
  override name = "ExitCode";
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/**
 * Builds several VMs of one input, one after another: every VM's input is
 * checked before anything is written, each distinct system is evaluated
 * once (VMs with equal files share the first one's evaluation record), a
 * VM that fails does not stop the others, and a table ends the run. The
 * exit code is the highest of the runs; an interrupt stops them all.
 */
async function buildMany(names: readonly string[], steps: string[] | null, flags: CommonFlags, planOnly: boolean) {
  const env = standaloneEnv();
  const vms = [...new Set(names)];
  for (const vm of vms) {
    try {
      checkFlowInput(env, flowInputFromFlags({ ...flags, vmName: vm }));
    } catch (error) {
      throw error instanceof InputError ? inCallersWords(error, { ...flags, vmName: vm }) : error;
    }
  }
  const style = errorStyle(flags.color ? [`--color=${flags.color}`] : [], env);
  const runs: VmRunRow[] = [];
  for (const vm of vms) {
    const started = performance.now();
    let run: VmRunRow;
    try {
      const result = await runStepsOf(steps, { ...flags, vmName: vm }, planOnly);
      run = { vm, exitCode: 0, seconds: 0, result };
    } catch (error) {
      if (error instanceof Interrupted) throw error;
      const failure = failureOf(error);
      process.stderr.write(`${style.red(style.bold("error:"))} ${vm}: ${failure.message}\n`);
      run = { vm, exitCode: failure.code, seconds: 0, result: null };
    }
    run.seconds = Math.round(performance.now() - started) / 1000;
    runs.push(run);
  }
  if (flags.json) {
    const rows = runs.map((r) => ({ vm_name: r.vm, exit_code: r.exitCode, seconds: r.seconds, result: r.result }));
    process.stdout.write(`${JSON.stringify(rows)}\n`);
  } else {
    process.stdout.write(formatVmRuns(runs));
  }
  const worst = Math.max(...runs.map((r) => r.exitCode));
  if (worst !== 0) throw new ExitCode(worst);
}

async function runCheckedSteps(
  steps: string[] | null,
  flags: CommonFlags,
  input: FlowInput,
  env: Env,
  planOnly: boolean,
): Promise<Record<string, unknown>> {
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
  // never re-render it between this run's render and its build. By its real
  // path, as the steps take it (a --config-dir given through a link).
  const runDir = realPathOf(configDir ?? configDirOf(env, input.guest?.vm_name));
  const log = cliLogger(flags, env);
  const context = createContext("nixos-closure", nixSettings(null), { env, log, signal: interrupt.signal });
  const options: ContextOptions = {
    env,
    log,
    signal: interrupt.signal,
    words: CLI_WORDS,
    heldLocks: new Set([runDir]),
    nixVersions: NIX_VERSIONS,
    ...outputOptions(flags),
  };
  try {
    makeDirs(dirname(runDir));
    const run = await withDirLock(runDir, context, () =>
      withContextOptions(options, () =>
        runFlow(loadFlow(), input, runInProcess, { ...(steps ? { only: steps } : {}), results, extraArgs }),
      ),
    );
    return run.result;
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
      addDeliveryOptions(addNixBuildOptions(addUpdateLockOption(addClosureOptions(addGuestOptions(flowCommand("build"), true))))),
    ),
  )
    .description("render, lock and build (the whole flow); prints the result: config_dir, toplevel, init, initrd, ...")
    .option("--prepare-root", "then prepare a root whose store holds exactly the closure (serve its store_dir to the guest)")
    .option("--dry-run", "only say what the build would build and fetch (the same as `plan`)")
    .option("--only", "run only the build step, on an already rendered and locked config dir")
    .addOption(new Option("--config-dir <dir>", "with --only: the config dir (default: the one of --vm-name)"))
    .action((given: Omit<CommonFlags, "vmName"> & { vmName?: string[] }) => {
      const { vmName: names = [], ...flags } = given;
      if (flags.dryRun && flags.prepareRoot) {
        throw new InputError("--prepare-root", true, "cannot go with --dry-run: a dry run builds nothing to make a root of");
      }
      const steps = flags.only ? ["build_closure"] : flags.dryRun ? ["render_config", "lock_config", "build_closure"] : null;
      if (new Set(names).size > 1) {
        if (flags.configDir !== undefined)
          throw new InputError("--config-dir", flags.configDir, "names one VM's config dir: give one --vm-name with it");
        return buildMany(names, steps, flags, flags.dryRun === true);
      }
      return runSteps(steps, { ...flags, vmName: names[0] }, flags.dryRun === true);
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
        printCleanUp(
          await cleanUpVms(context, {
            olderThanDays: days,
            // As typed: digits only ("" is not 0).
            keep: flags.keep,
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
    if (error instanceof ExitCode) return error.code;
    return reportFailure(error, argv);
  }
}

/**
 * Says on stderr what ended the run and returns the exit code: an error of
 * ours carries both (its message, its exit status); a file-system error is
 * named by operation and path; anything else is a bug, shown with its stack.
 */
export function reportFailure(error: unknown, argv: readonly string[]): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_BAD_INPUT; // 0: --help, --version
  const style = errorStyle(argv, standaloneEnv());
  const failure = failureOf(error);
  process.stderr.write(`${style.red(style.bold("error:"))} ${failure.message}\n`);
  return failure.code;
}

/** What an error says to the operator, and the exit code it ends a run with. */
function failureOf(error: unknown): { code: number; message: string } {
  if (error instanceof ToolError) {
    return { code: error.exitStatus, message: `${error instanceof InputError ? "bad input: " : ""}${error.message}` };
  }
  if (isFileSystemError(error)) return { code: EXIT_FAILURE, message: fileSystemMessage(error) };
  return { code: EXIT_FAILURE, message: (error as Error)?.stack ?? String(error) };
}
