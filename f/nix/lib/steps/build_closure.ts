// build_closure's core: build the toplevel of a locked config dir, read init
// and initrd from its bootspec, report its closure, keep the previous one
// rooted, and deliver it where the nix group says.
import { createHash } from "node:crypto";
import { existsSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { readBootInfo } from "../build/bootspec.ts";
import { type Delivery, deliver } from "../build/deliver.ts";
import { formatOverrides, type OverrideReport, verifyOverrides } from "../build/overrides.ts";
import type { BuildPlan } from "../build/plan.ts";
import { ProgressReporter } from "../build/progress/display.ts";
import { BuildProgress } from "../build/progress/tracker.ts";
import { type ClosureReport, closureReport, formatClosureReport, formatLargest } from "../build/report.ts";
import { sourceInputsOf } from "../config/render.ts";
import { SetupError } from "../core/errors.ts";
import { MAX_NIX_FILE_BYTES, readCache, readSmallFile, writeCache } from "../core/files.ts";
import { pathFlakeRef } from "../nix/flake_ref.ts";
import type { PathInfo } from "../nix/json.ts";
import type { Nix } from "../nix/locate.ts";
import { addGcRoot, build, closureInfo, type EventStream } from "../nix/operations.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { configDirCaches, existingConfigDir } from "../worker/layout.ts";
import type { Context } from "./context.ts";
import { checkPublishTargets } from "./flow_input.ts";
import { checkLockFile } from "./lock_config.ts";

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

/** The toplevel the result link points to, when it is still in the store. */
function currentResult(link: string): string | null {
  try {
    const target = readlinkSync(link);
    return existsSync(target) ? target : null;
  } catch {
    return null;
  }
}

const seconds = (ms: number) => Math.round(ms) / 1000;

/** The installable every build and plan of a config dir names. */
export function toplevelInstallable(configDir: string): string {
  return `${pathFlakeRef(configDir)}#toplevel`;
}

/** The source overrides of a locked config dir, checked to reach its system before anything is built; logged. */
/**
 * The source overrides of a locked config dir, checked to reach its system
 * before anything is built, and logged. The check is an evaluation; its
 * answer depends only on the config dir's files (flake.lock pins every
 * source), so it is kept beside the config dir and reused while they are
 * unchanged: a no-op rebuild asks Nix nothing more.
 */
export async function checkedOverrides(
  context: Context,
  nix: Nix,
  dir: string,
  optional: readonly string[],
): Promise<OverrideReport[]> {
  const flake = readSmallFile(join(dir, "flake.nix"), MAX_NIX_FILE_BYTES);
  const lockText = readSmallFile(join(dir, "flake.lock"), MAX_NIX_FILE_BYTES);
  const sourceInputs = sourceInputsOf(flake);
  if (sourceInputs.length === 0) return [];
  const key = createHash("sha256")
    .update(JSON.stringify([flake, readSmallFile(join(dir, "default.nix"), MAX_NIX_FILE_BYTES), lockText, [...optional].sort()]))
    .digest("hex");
  const cacheFile = configDirCaches(dir).overrides;
  let reports = cachedReports(cacheFile, key);
  if (reports === null) {
    reports = await verifyOverrides(nix, pathFlakeRef(dir), JSON.parse(lockText) as unknown, sourceInputs, optional);
    writeCache(cacheFile, { key, reports });
  }
  context.log.info(formatOverrides(reports));
  return reports;
}

/**
 * The closure of a toplevel with its sizes. A store path's closure never
 * changes, so the last one asked is kept beside the config dir and a no-op
 * rebuild reports without asking Nix again.
 */
async function closureOf(nix: Nix, dir: string, toplevel: string): Promise<PathInfo[]> {
  const cacheFile = configDirCaches(dir).closure;
  const cached = readCache(cacheFile) as { toplevel?: unknown; closure?: PathInfo[] } | null;
  if (cached?.toplevel === toplevel && Array.isArray(cached.closure)) return cached.closure;
  const closure = await closureInfo(nix, [toplevel]);
  const sizes = closure.map((info) => ({ path: info.path, narSize: info.narSize, references: [] }));
  writeCache(cacheFile, { toplevel, closure: sizes });
  return closure;
}

function cachedReports(file: string, key: string): OverrideReport[] | null {
  const cached = readCache(file) as { key?: unknown; reports?: OverrideReport[] } | null;
  // Reports of an older release lack what is asked of them now (how the source was taken): made afresh.
  const reports = cached?.key === key && Array.isArray(cached.reports) ? cached.reports : null;
  return reports?.every((r) => typeof r?.kind === "string") ? reports : null;
}

export async function buildClosure(
  context: Context,
  configDir: string,
  optionalOverrides: readonly string[] = [],
): Promise<BuildClosureResult> {
  const dir = existingConfigDir(configDir, context.words.step("render_config"), context.env);
  const nix = await context.nix();
  const { log, settings } = context;
  checkPublishTargets(context.env, settings, "nix_settings.publish_to");
  log.detail(`using ${nix.program}`);
  const installable = toplevelInstallable(dir);
  return withDirLock(dir, context, async () => {
    checkLockFile(context, dir);
    const overrides = await checkedOverrides(context, nix, dir, optionalOverrides);
    const resultLink = join(dir, "result");
    const previous = currentResult(resultLink);
    const started = performance.now();
    const tracker =
      context.progress === "off"
        ? null
        : new BuildProgress(undefined, { buildLogs: context.output.buildLogs, chatter: context.output.chatter });
    const reporter = tracker ? new ProgressReporter(tracker, log) : null;
    const events: EventStream | null =
      tracker && reporter ? { onLine: (line) => reporter.line(line), errorLines: () => tracker.messages } : null;
    let built: Awaited<ReturnType<typeof build>>;
    let succeeded = false;
    const interrupted = () => tracker?.interrupt();
    context.signal.addEventListener("abort", interrupted, { once: true });
    try {
      // Nix replaces `result` only when the build succeeds, and the build dies with the step (see core/process.ts).
      built = await build(nix, installable, resultLink, events, context.output.buildLogs);
      succeeded = true;
    } finally {
      context.signal.removeEventListener("abort", interrupted);
      reporter?.finish(succeeded ? "succeeded" : context.signal.aborted ? "interrupted" : "failed");
    }
    const totalMs = performance.now() - started;
    const toplevel = built[0]?.outputs.out;
    if (toplevel === undefined) throw new SetupError(`nix build ${installable} reported no output path`);
    if (previous !== null && previous !== toplevel) await addGcRoot(nix, previous, join(dir, "result-previous"));

    const boot = readBootInfo(toplevel);
    for (const warning of boot.warnings) log.warn(warning);
    const closure = await closureOf(nix, dir, toplevel);
    const report = await closureReport(nix, closure, toplevel, previous);
    log.detail(`toplevel ${toplevel}\ninit     ${boot.init}\ninitrd   ${boot.initrd ?? "(none)"}`);
    log.info(formatClosureReport(report));
    log.detail(formatLargest(report));

    const published = await deliver(nix, toplevel, closure, settings.publishTo, settings.substituteOnDestination);

    const evaluationMs = tracker?.evaluationMs ?? null;
    const plan = tracker?.plan ?? null;
    return {
      config_dir: dir,
      toplevel,
      init: boot.init,
      initrd: boot.initrd,
      boot_json: boot.bootJson,
      closure: report,
      built: tracker?.built ?? [],
      plan: plan && plan.derivations.length + plan.fetch.length > 0 ? plan : null,
      timing: {
        evaluation_seconds: evaluationMs === null ? null : seconds(evaluationMs),
        build_seconds: evaluationMs === null ? null : seconds(totalMs - evaluationMs),
        total_seconds: seconds(totalMs),
      },
      substituted: tracker?.substituted ?? [],
      unreachable_builders: tracker?.unreachableBuilders ?? [],
      published,
      overrides,
    };
  });
}
