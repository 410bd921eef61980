// What the flow commands (build, plan, render, lock, prepare-root) share:
// the flow input made from their flags and checked whole before any step
// runs, the VM's config dir held for the whole run, the flow's own steps run
// in process (the mains Windmill runs, through flow.yaml's transforms), and
// a bad field named as the caller gave it: its flag, or its field in the
// --input file.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { InputError, Interrupted } from "../f/nix/lib/core/errors.ts";
import { makeDirs, realPathOf } from "../f/nix/lib/core/files.ts";
import { checkFlowInput, configDirOf, type FlowInput } from "../f/nix/lib/steps/checks.ts";
import { runStep, standaloneEnv, withContextOptions } from "../f/nix/lib/steps/context.ts";
import { withDirLock } from "../f/nix/lib/worker/dir_lock.ts";
import { CLI_WORDS, withCommandContext } from "./command_context.ts";
import { ExitCode, failureOf } from "./failure.ts";
import { loadFlow, type Results, runFlow, runInProcess } from "./flow.ts";
import { FLAG_OF_FIELD, type FlowFlags, flowInputFromFlags } from "./input_from_flags.ts";
import type { BuildOutputFlags } from "./options.ts";
import { errorStyle, formatVmRuns, printResult, type VmRunRow } from "./output.ts";

export interface FlowCommandFlags extends FlowFlags, BuildOutputFlags {
  configDir?: string;
  only?: boolean;
  dryRun?: boolean;
}

/** The flow's modules a command runs, by id (null: all of them). */
export type FlowSteps = readonly string[] | null;

function asList(value: unknown): ({ pkg?: unknown; optional?: unknown } | null)[] {
  return Array.isArray(value) ? value : [];
}

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
function inCallersWords(error: InputError, flags: FlowCommandFlags): InputError {
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

/** Runs the flow's `steps` for one VM and prints the flow's result. */
export async function runFlowSteps(steps: FlowSteps, flags: FlowCommandFlags, planOnly = false): Promise<void> {
  printResult(await runStepsOf(steps, flags, planOnly), flags.json);
}

/** The flow's result of one VM's run of `steps`, its errors in the caller's words. */
async function runStepsOf(steps: FlowSteps, flags: FlowCommandFlags, planOnly: boolean): Promise<Record<string, unknown>> {
  const input = flowInputFromFlags(flags);
  try {
    return await withCommandContext(flags, async (options) => {
      const { env } = options;
      // The whole input is checked before any step runs: a bad nix or root field writes nothing.
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
      // The whole run holds the VM's config dir: another run of the same VM can
      // never re-render it between this run's render and its build. By its real
      // path, as the steps take it (a --config-dir given through a link).
      const runDir = realPathOf(configDir ?? configDirOf(env, input.guest?.vm_name));
      makeDirs(dirname(runDir));
      const run = await runStep("nixos-closure", null, (context) =>
        withDirLock(runDir, context, () =>
          withContextOptions({ ...options, heldLocks: new Set([runDir]) }, () =>
            runFlow(loadFlow(), input, runInProcess, {
              ...(steps ? { only: steps } : {}),
              results: configDir ? resultsBefore(configDir, input) : {},
              extraArgs: planOnly ? { build_closure: { plan_only: true } } : {},
            }),
          ),
        ),
      );
      return run.result;
    });
  } catch (error) {
    throw error instanceof InputError ? inCallersWords(error, flags) : error;
  }
}

/** What the steps before those run alone would have returned: the config dir, and the overrides allowed to reach nothing. */
function resultsBefore(configDir: string, input: FlowInput): Results {
  const optionalOverrides = [...asList(input.closure?.overrides), ...asList(input.closure?.extra_overrides)]
    .filter((o) => o?.optional === true)
    .map((o) => o?.pkg);
  return {
    render_config: { config_dir: configDir, optional_overrides: optionalOverrides },
    build_closure: { config_dir: configDir },
  };
}

/**
 * Builds several VMs of one input, one after another: every VM's input is
 * checked before anything is written, each distinct system is evaluated
 * once (VMs with equal files share the first one's evaluation record), a
 * VM that fails does not stop the others, and a table ends the run. The
 * exit code is the highest of the runs; an interrupt stops them all.
 */
export async function buildMany(
  names: readonly string[],
  steps: FlowSteps,
  flags: FlowCommandFlags,
  planOnly: boolean,
): Promise<void> {
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
