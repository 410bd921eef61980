// nixos-closure: the f/nix/build flow from a command line, without Windmill.
// Same steps, same contract, same per-VM directory layout.
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { type BuildPlan, formatPlan } from "../f/nix/lib/build/plan.ts";
import { formatClosureDiff } from "../f/nix/lib/build/report.ts";
import { InputError, Interrupted } from "../f/nix/lib/core/errors.ts";
import { fileSystemMessage, isFileSystemError, makeDirs } from "../f/nix/lib/core/files.ts";
import { formatBytes, formatSeconds } from "../f/nix/lib/core/format.ts";
import { streamLogger } from "../f/nix/lib/core/log.ts";
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
import { type Collection, cleanUpVms, diffSystems, listVms, type VmInfo } from "../f/nix/lib/steps/vms.ts";
import { withDirLock } from "../f/nix/lib/worker/dir_lock.ts";
import { runDemo } from "./demo.ts";
import { type FlowInput, loadFlow, type Results, ROOT, runFlow, runInProcess } from "./flow.ts";
import { FLAG_OF_FIELD, type FlowFlags, flowInputFromFlags } from "./flow_input.ts";

const EXIT_FAILURE = 1;
const EXIT_BAD_INPUT = 2;

interface CommonFlags extends FlowFlags {
  json?: boolean;
  progress?: boolean;
  configDir?: string;
  only?: boolean;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function addFlowOptions(command: Command): Command {
  return command
    .option("--input <file.json>", "a flow input {guest, closure, lock, root, nix}; the flags below override its fields")
    .option("--vm-name <name>", "host name of the guest and name of its config dir (default: nixos)")
    .option("--user <name>", "the unprivileged account (default: kdevops)")
    .option("--ssh-key <line>", "an OpenSSH public key line to trust (repeatable)", collect)
    .option("--ssh-key-file <file>", "a file of public key lines to trust (repeatable)", collect)
    .option("--share <mount=tag[:opt,...]>", "a virtiofs share, e.g. /mnt/linux=linux:ro (repeatable)", collect)
    .option("--home", "share your home into the guest and make it root's home (the default)")
    .option("--no-home", "do not share a home")
    .option("--home-dir <dir>", "the home to share (default: $HOME under /home/, else /home/kdevops)")
    .option("--profile <name>", "a profile: build-tools, controller, devel, monitoring; 'none' for none (repeatable)", collect)
    .option("--test-suite <name>", "a test suite, e.g. fstests; 'none' for none (repeatable)", collect)
    .option("--override <pkg=src[#ref]>", "build a package from a directory or git URL (repeatable)", collect)
    .option(
      "--optional-override <pkg=src[#ref]>",
      "the same, allowed to reach nothing in this VM's closure (repeatable)",
      collect,
    )
    .option("--update-lock", "re-pin the nixos-flake library input")
    .option("--nixos-flake <dir>", "the nixos-flake library (default: $VENDOR_DIR/nixos-flake)")
    .option("--builders <spec>", "remote build machines (Nix's builders setting)")
    .option("--substituter <uri>", "an extra binary cache (repeatable)", collect)
    .option("--trusted-public-key <key>", "a trusted cache key, name:base64 (repeatable)", collect)
    .option("--max-jobs <n>", "derivations built at once here (a number or auto)")
    .option("--cores <n>", "cores per build (0: all)")
    .option("--option <name=value>", "any other Nix setting (repeatable)", collect)
    .option("--publish-to <uri>", "copy the built closure to this store, e.g. ssh-ng://vmhost (repeatable)", collect)
    .option("--substitute-on-destination", "let destinations fetch from their own caches")
    .option("--json", "print the result as JSON, as the last line of stdout; logs go to stderr")
    .option("--no-progress", "show Nix's own build output instead of the progress line");
}

function printResult(result: Record<string, unknown>, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  if (result.plan && !result.toplevel) {
    process.stdout.write(`${formatPlan(result.plan as BuildPlan)}\n`);
    return;
  }
  // Scalars only: the closure report and the plan were printed as tables in the log above.
  const meaningfulNull = ["initrd", "boot_json"];
  const shown = Object.entries(result).filter(
    ([k, v]) => (typeof v !== "object" && v !== undefined) || (v === null && meaningfulNull.includes(k)),
  );
  const width = Math.max(...shown.map(([k]) => k.length));
  for (const [key, value] of shown) process.stdout.write(`${key.padEnd(width)}  ${value ?? "(none)"}\n`);
  const timing = result.timing as
    | { evaluation_seconds: number | null; build_seconds: number | null; total_seconds: number }
    | undefined;
  if (timing) {
    const parts =
      timing.evaluation_seconds === null || timing.build_seconds === null
        ? []
        : [`evaluation ${formatSeconds(timing.evaluation_seconds)}, build ${formatSeconds(timing.build_seconds)}, `];
    process.stdout.write(`${"time".padEnd(width)}  ${parts.join("")}total ${formatSeconds(timing.total_seconds)}\n`);
  }
}

function asList(value: unknown): ({ pkg?: unknown; optional?: unknown } | null)[] {
  return Array.isArray(value) ? value : [];
}

/** The version in package.json, beside cli/ and dist/ alike. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** Runs a housekeeping command with a context of the CLI's own. */
async function withCliContext(name: string, work: (context: Context) => Promise<void>): Promise<void> {
  const interrupt = interruptSignal();
  try {
    await work(
      createContext(name, nixSettings(null), {
        env: standaloneEnv(),
        log: streamLogger(process.stderr),
        signal: interrupt.signal,
        words: CLI_WORDS,
      }),
    );
  } finally {
    interrupt.dispose();
  }
}

function formatVms(vms: readonly VmInfo[]): string {
  if (vms.length === 0) return "no VMs on this worker slot\n";
  const rows = vms.map((vm) => [
    vm.vm_name,
    vm.worker,
    vm.state,
    vm.built_at?.slice(0, 16).replace("T", " ") ?? "-",
    formatBytes(vm.closure_size),
    formatBytes(vm.unique_size),
    vm.toplevel ?? "-",
  ]);
  const header = ["VM", "worker", "state", "built", "closure", "only its own", "toplevel"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return (
    [header, ...rows]
      .map((r) =>
        r
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

function printCleanUp(result: Collection, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const verb = result.removed.some((r) => r.dry_run) ? "would remove" : "removed";
  for (const r of result.removed)
    process.stdout.write(`${verb} ${r.vm_name}: the next nix-store --gc can free ${formatBytes(r.frees)}\n`);
  if (result.removed.length === 0) process.stdout.write("nothing to remove\n");
  for (const name of result.in_use) process.stdout.write(`kept ${name}: in use\n`);
  if (result.collected) process.stdout.write(`${result.collected}\n`);
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

/**
 * Names a bad field the way the user gave it: the flag (`--profile`), or
 * the field of the --input file; Windmill's field paths are for Windmill.
 */
function inCallersWords(error: InputError, flags: CommonFlags): InputError {
  const match = /^(\w+)\.(\w+)(.*)$/.exec(error.field);
  if (!match) return flags.input ? new InputError(`--input ${flags.input}: ${error.field}`, error.value, error.reason) : error;
  const [, group = "", field = "", rest = ""] = match;
  const byFlag = flowInputFromFlags({ ...flags, input: undefined })[group]?.[field] !== undefined;
  const flag = (FLAG_OF_FIELD as Record<string, Record<string, string>>)[group]?.[field];
  if (byFlag && flag) {
    // A list's element is the flag's own value; a part of one (overrides[0].src) is named after the flag.
    const part = /^\[\d+\]$/.test(rest) || rest === "" ? "" : ` (${field}${rest})`;
    return new InputError(`${flag}${part}`, error.value, error.reason);
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
  const context = createContext("nixos-closure", nixSettings(null), {
    env,
    log: streamLogger(process.stderr),
    signal: interrupt.signal,
  });
  const options: ContextOptions = {
    env,
    log: context.log,
    signal: interrupt.signal,
    words: CLI_WORDS,
    heldLocks: new Set([runDir]),
    ...(flags.progress === false ? { progress: "off" as const } : {}),
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
      "Build the NixOS closure a test VM boots (imageless: tmpfs root, /nix/store and /lib/modules over virtiofs):\n" +
        "the f/nix/build Windmill flow, run here. Config dirs live in $WORKERS_DIR/$WORKER_INDEX/nix/<vm-name>\n" +
        "(default WORKERS_DIR: $XDG_STATE_HOME/nixos-closure/workers, WORKER_INDEX: 0).",
    )
    .version(packageVersion(), "--version", "print the version and exit")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  addFlowOptions(cli.command("build"))
    .description("render, lock and build (the whole flow); prints the result: toplevel, init, initrd, config_dir, ...")
    .option("--prepare-root", "then prepare a root whose store holds exactly the closure (serve its store_dir to the guest)")
    .option("--root-dir <dir>", "where that root appears (default: <config_dir>/root)")
    .option("--closure <path>", "a store path whose closure also goes into the root (repeatable)", collect)
    .option("--closure-file <file>", "a nix-store --export file of a closure to import into the root (repeatable)", collect)
    .option("--channel <path>", "a store path set as root's channels profile in the root")
    .option("--nix-build", "build the root with Nix as a store path (to ship) instead of hard-linking it")
    .option("--only", "run only the build step, on an already rendered and locked config dir")
    .addOption(new Option("--config-dir <dir>", "with --only: the config dir (default: the one of --vm-name)"))
    .action((flags: CommonFlags) => runSteps(flags.only ? ["build_closure"] : null, flags));

  addFlowOptions(cli.command("plan"))
    .description("render and lock, then report what a build would build and fetch (nix build --dry-run), building nothing")
    .action((flags: CommonFlags) => runSteps(["render_config", "lock_config", "build_closure"], flags, true));

  addFlowOptions(cli.command("prepare-root"))
    .description("prepare a closure-only root from the config dir's last build (its result link)")
    .option("--root-dir <dir>", "where the root appears (default: <config_dir>/root)")
    .option("--closure <path>", "a store path whose closure also goes into the root (repeatable)", collect)
    .option("--closure-file <file>", "a nix-store --export file of a closure to import into the root (repeatable)", collect)
    .option("--channel <path>", "a store path set as root's channels profile in the root")
    .option("--nix-build", "build the root with Nix as a store path (to ship) instead of hard-linking it")
    .option("--config-dir <dir>", "the config dir (default: the one of --vm-name)")
    .action((flags: CommonFlags) => runSteps(["prepare_root"], { ...flags, prepareRoot: true }));

  addFlowOptions(cli.command("render"))
    .description("write flake.nix and default.nix into the VM's config dir")
    .action((flags: CommonFlags) => runSteps(["render_config"], flags));

  addFlowOptions(cli.command("lock"))
    .description("lock the config dir's flake inputs (source overrides every time; the library with --update-lock)")
    .option("--config-dir <dir>", "the config dir (default: the one of --vm-name)")
    .action((flags: CommonFlags) => runSteps(["lock_config"], flags));

  cli
    .command("list")
    .description("the VMs of this worker slot: state, last build, toplevel, closure size, what only it keeps alive")
    .option("--all-workers", "the VMs of every worker slot under WORKERS_DIR")
    .option("--json", "print the list as JSON on stdout")
    .action((flags: { allWorkers?: boolean; json?: boolean }) =>
      withCliContext("list", async (context) => {
        const vms = await listVms(context, flags.allWorkers === true);
        if (flags.json) process.stdout.write(`${JSON.stringify(vms)}\n`);
        else process.stdout.write(formatVms(vms));
      }),
    );

  cli
    .command("remove")
    .description("remove VMs: config dir, lock, GC roots, prepared roots (only ours); refuses a VM in use")
    .argument("<vm...>", "VM names")
    .option("--dry-run", "only say what would be removed")
    .option("--keep-root", "keep the VMs' prepared roots")
    .option("--json", "print what was removed as JSON on stdout")
    .action((names: string[], flags: { dryRun?: boolean; keepRoot?: boolean; json?: boolean }) =>
      withCliContext("remove", async (context) => {
        printCleanUp(
          await cleanUpVms(context, { names, dryRun: flags.dryRun === true, keepRoot: flags.keepRoot === true }),
          flags.json,
        );
      }),
    );

  cli
    .command("gc")
    .description("remove the VMs not built for a while (never one in use); --collect runs Nix's garbage collector")
    .option("--older-than <age>", "remove VMs not built for this long: 30d, 12h", "30d")
    .option("--keep <n>", "always keep the n most recent VMs", "0")
    .option("--collect", "then run nix-store --gc")
    .option("--dry-run", "only say what would be removed")
    .option("--json", "print what was removed as JSON on stdout")
    .action((flags: { olderThan: string; keep: string; collect?: boolean; dryRun?: boolean; json?: boolean }) =>
      withCliContext("gc", async (context) => {
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

  cli
    .command("diff")
    .description("what changed between two systems: VM names, VM@previous, or store paths; one VM: against its previous build")
    .argument("<a>", "a VM, VM@previous or a store path")
    .argument("[b]", "another one (default: a against its previous build)")
    .option("--json", "print the diff as JSON on stdout")
    .action((a: string, b: string | undefined, flags: { json?: boolean }) =>
      withCliContext("diff", async (context) => {
        const result = await diffSystems(context, a, b);
        if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else
          process.stdout.write(
            `${formatClosureDiff(result.from, result.to, result.diff, Number.POSITIVE_INFINITY).join("\n")}\n`,
          );
      }),
    );

  cli
    .command("demo")
    .description(
      "the whole flow, offline, against the example library and stand-in nixpkgs shipped with this tool,\n" +
        "in a state directory of its own under the temp dir: render, lock, build, prepare the root, report",
    )
    .option("--keep", "keep the demo's state directory (its config dir, result and root)")
    .option("--json", "print the result as JSON, as the last line of stdout; logs go to stderr")
    .option("--no-progress", "show Nix's own build output instead of the progress line")
    .action(async (flags: { keep?: boolean; json?: boolean; progress?: boolean }) => {
      const interrupt = interruptSignal();
      try {
        const { result } = await runDemo(
          {
            log: streamLogger(process.stderr),
            signal: interrupt.signal,
            words: CLI_WORDS,
            ...(flags.progress === false ? { progress: "off" as const } : {}),
          },
          flags.keep === true,
        );
        printResult(result, flags.json);
      } finally {
        interrupt.dispose();
      }
    });

  for (const command of cli.commands) command.exitOverride().showHelpAfterError("(run with --help for usage)");
  return cli;
}

/** Runs the CLI; returns the exit code: 0 success, 2 bad input, 1 Nix or other failure, 128 + n when interrupted by signal n. */
export async function run(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0; // --help, --version
      return EXIT_BAD_INPUT;
    }
    if (error instanceof Interrupted) {
      process.stderr.write(`error: ${error.message}\n`);
      return 128 + constants.signals[error.signal];
    }
    if (error instanceof InputError) {
      process.stderr.write(`error: bad input: ${error.message}\n`);
      return EXIT_BAD_INPUT;
    }
    if (isFileSystemError(error)) {
      process.stderr.write(`error: ${fileSystemMessage(error)}\n`);
      return EXIT_FAILURE;
    }
    const known = error instanceof Error && ["SetupError", "NixError", "SpawnError"].includes(error.name);
    process.stderr.write(`error: ${known ? (error as Error).message : ((error as Error)?.stack ?? String(error))}\n`);
    return EXIT_FAILURE;
  }
}
