// build_closure's core: build the toplevel of a locked config dir, read init
// and initrd from its bootspec, report its closure, keep the previous one
// rooted, and deliver it where the nix group says.
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { readBootInfo } from "../build/bootspec.ts";
import { type Delivery, deliver } from "../build/deliver.ts";
import { type EvaluationRecord, readSharedClosure, writeSharedClosure } from "../build/evaluation_record.ts";
import { formatOverrides, type OverrideReport } from "../build/override_reach.ts";
import type { BuildPlan } from "../build/plan.ts";
import { ProgressReporter } from "../build/progress/display.ts";
import { BuildProgress } from "../build/progress/tracker.ts";
import { type ClosureReport, closureReport, formatClosureReport, formatLargest } from "../build/report.ts";
import { kernelParamsOf } from "../config/render.ts";
import { checkRenderId } from "../config/render_identity.ts";
import { NixError, SetupError } from "../core/errors.ts";
import { existingLinkTarget, readCache, readIfExists, writeCache } from "../core/files.ts";
import { toplevelInstallable } from "../nix/flake_ref.ts";
import type { PathInfo } from "../nix/json.ts";
import type { Nix } from "../nix/locate.ts";
import { addGcRoot, build, closureInfo, derivationInstallable, type EventStream } from "../nix/operations.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { configDirCaches, existingConfigDir, workerLayout } from "../worker/layout.ts";
import { checkedOverrides, checkLockFile, checkPublishTargets } from "./checks.ts";
import type { Context } from "./context.ts";
import {
  asOnlyEvaluation,
  recordEvaluation,
  recordedEvaluation,
  rememberKey,
  sayWhyEvaluating,
  usableRecord,
} from "./evaluation.ts";

export interface BuildTiming {
  /** Until Nix started building or fetching; null when progress is off. */
  evaluation_seconds: number | null;
  build_seconds: number | null;
  total_seconds: number;
}

export interface BuildClosureResult {
  config_dir: string;
  toplevel: string;
  init: string;
  initrd: string | null;
  /** The bootspec file init and initrd were read from, or null. */
  boot_json: string | null;
  /** For the guest's kernel command line: `systemd.hostname=<vm_name>` with hostname_at_boot, else none. */
  kernel_params: string[];
  /** False when the system came from the record of an earlier evaluation of the same inputs (nothing was evaluated). */
  evaluated: boolean;
  /** The VM whose build evaluated this system: this one, or the one whose record it shares. */
  evaluated_by: string;
  closure: ClosureReport;
  /** Derivations this build built (store paths of the .drv files). */
  built: string[];
  /** What Nix reported it would do as it started (Nix 2.19+), else null. */
  plan: BuildPlan | null;
  timing: BuildTiming;
  /** Store paths substituted from binary caches instead of built. */
  substituted: string[];
  /** Remote builders Nix could not reach (it built locally instead). */
  unreachable_builders: string[];
  /** Where the closure was delivered: the paths and bytes that went (those already there skipped). */
  published: Delivery[];
  /** Each source override, its source's store path and the closure paths built from it. */
  overrides: OverrideReport[];
}

const seconds = (ms: number) => Math.round(ms) / 1000;

/**
 * The closure of a toplevel with its sizes. A store path's closure never
 * changes, so the last one asked is kept beside the config dir (a no-op
 * rebuild reports without asking Nix again) and beside the evaluation
 * records (a VM sharing another's system too).
 */
async function closureOf(context: Context, nix: Nix, dir: string, toplevel: string): Promise<PathInfo[]> {
  const cacheFile = configDirCaches(dir).closure;
  const cached = readCache(cacheFile) as { toplevel?: unknown; closure?: PathInfo[] } | null;
  if (cached?.toplevel === toplevel && Array.isArray(cached.closure)) return cached.closure;
  const recordsDir = workerLayout(context.env).evaluationsDir;
  const shared = readSharedClosure(recordsDir, toplevel);
  const closure = shared ? shared.map((info) => ({ ...info, references: [] })) : await closureInfo(nix, [toplevel]);
  if (!shared) writeSharedClosure(recordsDir, toplevel, closure);
  const sizes = closure.map((info) => ({ path: info.path, narSize: info.narSize, references: [] }));
  writeCache(cacheFile, { toplevel, closure: sizes });
  return closure;
}

/** What a build of a config dir knows before Nix runs. */
interface BuildStart {
  dir: string;
  vmName: string;
  resultLink: string;
  /** The toplevel `result` pointed to before, when still in the store. */
  previous: string | null;
  started: number;
  kernelParams: string[];
}

/** What differs between a build that evaluated and one served from a record. */
interface BuildOutcome {
  toplevel: string;
  evaluated: boolean;
  evaluatedBy: string;
  built: string[];
  plan: BuildPlan | null;
  timing: BuildTiming;
  substituted: string[];
  unreachable_builders: string[];
  overrides: OverrideReport[];
}

/** The rest of a build, whichever way its toplevel came: the previous one kept rooted, bootspec, closure report, delivery. */
async function finishBuild(context: Context, nix: Nix, start: BuildStart, outcome: BuildOutcome): Promise<BuildClosureResult> {
  const { log, settings } = context;
  const { dir, previous } = start;
  const { toplevel } = outcome;
  if (previous !== null && previous !== toplevel) await addGcRoot(nix, previous, join(dir, "result-previous"));
  const boot = readBootInfo(toplevel);
  for (const warning of boot.warnings) log.warn(warning);
  const closure = await closureOf(context, nix, dir, toplevel);
  const report = await closureReport(nix, closure, toplevel, previous);
  log.detail(`toplevel ${toplevel}\ninit     ${boot.init}\ninitrd   ${boot.initrd ?? "(none)"}`);
  log.info(formatClosureReport(report, new Map(outcome.overrides.map((o) => [o.source, o.pkg]))));
  log.detail(formatLargest(report));
  const published = await deliver(nix, toplevel, closure, settings.publishTo, settings.substituteOnDestination);
  return {
    config_dir: dir,
    toplevel,
    init: boot.init,
    initrd: boot.initrd,
    boot_json: boot.bootJson,
    kernel_params: start.kernelParams,
    evaluated: outcome.evaluated,
    evaluated_by: outcome.evaluatedBy,
    closure: report,
    built: outcome.built,
    plan: outcome.plan,
    timing: outcome.timing,
    substituted: outcome.substituted,
    unreachable_builders: outcome.unreachable_builders,
    published,
    overrides: outcome.overrides,
  };
}

/** Evaluates and builds the system with Nix (the live progress on), as `nix build path:<dir>#toplevel`. */
async function evaluateAndBuild(
  context: Context,
  nix: Nix,
  start: BuildStart,
  optionalOverrides: readonly string[],
): Promise<BuildOutcome & { drv: string | null }> {
  const checkStarted = performance.now();
  const check = await checkedOverrides(context, nix, start.dir, optionalOverrides);
  // The override check evaluated the system: its derivation is built as it is, not evaluated a second time.
  const checkMs = check.toplevelDrv === null ? 0 : performance.now() - checkStarted;
  const installable =
    check.toplevelDrv === null ? toplevelInstallable(start.dir) : derivationInstallable(await nix.version(), check.toplevelDrv);
  const tracker =
    context.progress === "off"
      ? null
      : new BuildProgress(undefined, { buildLogs: context.output.buildLogs, chatter: context.output.chatter });
  const reporter = tracker ? new ProgressReporter(tracker, context.log) : null;
  const events: EventStream | null =
    tracker && reporter ? { onLine: (line) => reporter.line(line), errorLines: () => tracker.messages } : null;
  let built: Awaited<ReturnType<typeof build>>;
  let succeeded = false;
  const interrupted = () => tracker?.interrupt();
  context.signal.addEventListener("abort", interrupted, { once: true });
  try {
    // Nix replaces `result` only when the build succeeds, and the build dies with the step (see core/process.ts).
    built = await build(nix, installable, start.resultLink, events, context.output.buildLogs);
    succeeded = true;
  } finally {
    context.signal.removeEventListener("abort", interrupted);
    reporter?.finish(succeeded ? "succeeded" : context.signal.aborted ? "interrupted" : "failed");
  }
  const totalMs = performance.now() - start.started;
  const toplevel = built[0]?.outputs.out;
  if (toplevel === undefined) throw new SetupError(`nix build ${installable} reported no output path`);
  const evaluationMs =
    tracker?.evaluationMs === undefined || tracker.evaluationMs === null ? null : tracker.evaluationMs + checkMs;
  const plan = tracker?.plan ?? null;
  return {
    toplevel,
    drv: built[0]?.drvPath ?? null,
    evaluated: true,
    evaluatedBy: start.vmName,
    built: tracker?.built ?? [],
    plan: plan && plan.derivations.length + plan.fetch.length > 0 ? plan : null,
    timing: {
      evaluation_seconds: evaluationMs === null ? null : seconds(evaluationMs),
      build_seconds: evaluationMs === null ? null : seconds(totalMs - evaluationMs),
      total_seconds: seconds(totalMs),
    },
    substituted: tracker?.substituted ?? [],
    unreachable_builders: tracker?.unreachableBuilders ?? [],
    overrides: check.reports,
  };
}

/**
 * The system a record names, rooted at `result` without evaluating: null
 * when the record cannot serve this build (its system was collected, or an
 * override it found unreached is not optional here: the evaluation says why).
 */
async function servedFromRecord(
  context: Context,
  nix: Nix,
  start: BuildStart,
  record: EvaluationRecord,
  optionalOverrides: readonly string[],
): Promise<BuildOutcome | null> {
  const overrides = record.overrides.map((report) => ({ ...report, optional: optionalOverrides.includes(report.pkg) }));
  if (overrides.some((report) => report.built.length === 0 && !report.optional)) return null;
  if (!existsSync(record.toplevel)) {
    context.log.detail(`evaluation record not used: ${record.toplevel} was collected`);
    return null;
  }
  if (start.previous !== record.toplevel) {
    try {
      await addGcRoot(nix, record.toplevel, start.resultLink);
    } catch (error) {
      // Collected between the look and the root: evaluate as if there were no record.
      if (!(error instanceof NixError)) throw error;
      context.log.detail(`evaluation record not used: ${record.toplevel} could not be rooted`);
      return null;
    }
  }
  if (overrides.length > 0) context.log.info(formatOverrides(overrides));
  const at = record.evaluated_at.replace("T", " ").replace(/\.\d+Z$/, " UTC");
  context.log.info(
    record.evaluated_by !== start.vmName
      ? `same inputs as ${record.evaluated_by} (evaluated ${at}): evaluation skipped, its system shared`
      : start.previous === record.toplevel
        ? `inputs unchanged since ${at}: evaluation skipped`
        : `same inputs as this VM's build of ${at}: evaluation skipped, that system taken again`,
  );
  const totalSeconds = seconds(performance.now() - start.started);
  return {
    toplevel: record.toplevel,
    evaluated: false,
    evaluatedBy: record.evaluated_by,
    built: [],
    plan: null,
    timing: { evaluation_seconds: 0, build_seconds: 0, total_seconds: totalSeconds },
    substituted: [],
    unreachable_builders: [],
    overrides,
  };
}

export async function buildClosure(
  context: Context,
  configDir: string,
  optionalOverrides: readonly string[] = [],
  renderId = "",
): Promise<BuildClosureResult> {
  const dir = existingConfigDir(configDir, context.words.step("render_config"), context.env);
  const nix = await context.nix();
  checkPublishTargets(context.env, context.settings, "nix_settings.publish_to");
  context.log.detail(`using ${nix.program}`);
  return withDirLock(dir, context, async () => {
    checkRenderId(dir, renderId, context.step);
    checkLockFile(context, dir);
    const vmName = basename(dir);
    const resultLink = join(dir, "result");
    const start: BuildStart = {
      dir,
      vmName,
      resultLink,
      previous: existingLinkTarget(resultLink),
      started: performance.now(),
      kernelParams: kernelParamsOf(readIfExists(join(dir, "default.nix")) ?? "", vmName),
    };
    const evaluation = await recordedEvaluation(context, nix, dir);
    if ("reason" in evaluation) {
      context.log.detail(`evaluating (no evaluation record: ${evaluation.reason})`);
      return finishBuild(context, nix, start, await evaluateAndBuild(context, nix, start, optionalOverrides));
    }
    const recorded = evaluation.forced ? null : usableRecord(context, evaluation);
    const served = recorded && (await servedFromRecord(context, nix, start, recorded, optionalOverrides));
    if (served) {
      rememberKey(dir, evaluation);
      return finishBuild(context, nix, start, served);
    }
    const outcome = await asOnlyEvaluation(context, evaluation, vmName, async () => {
      // Another run may have evaluated this key while this one waited.
      const waited = evaluation.forced ? null : usableRecord(context, evaluation, false);
      const shared =
        waited && waited.evaluated_at !== recorded?.evaluated_at
          ? await servedFromRecord(context, nix, start, waited, optionalOverrides)
          : null;
      if (shared) return shared;
      sayWhyEvaluating(context, dir, evaluation);
      const evaluated = await evaluateAndBuild(context, nix, start, optionalOverrides);
      recordEvaluation(context, evaluation, {
        key: evaluation.key,
        toplevel: evaluated.toplevel,
        drv: evaluated.drv,
        evaluated_at: new Date().toISOString(),
        evaluated_by: vmName,
        overrides: evaluated.overrides,
      });
      return evaluated;
    });
    rememberKey(dir, evaluation);
    return finishBuild(context, nix, start, outcome);
  });
}
