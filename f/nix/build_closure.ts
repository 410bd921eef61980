/**
 * build_closure: build the system closure of a locked config dir.
 *
 * Equivalent shell commands:
 *
 *   nix build "path:$dir#toplevel" --json --out-link "$dir/result" --log-format internal-json -v
 *   jq -r '."org.nixos.bootspec.v1" | .init, .initrd' "$dir/result/boot.json"
 *   nix build "$previous" --out-link "$dir/result-previous"   # keep the last closure rooted
 *   nix path-info --json --recursive "$dir/result"            # closure report
 *   nix store diff-closures "$previous" "$dir/result"
 *
 *   nix copy --no-check-sigs --to "$uri" "$dir/result"       # each nix_settings.publish_to
 *
 * With plan_only: `nix build "path:$dir#toplevel" --dry-run`, nothing built.
 *
 * `path:` copies the directory into the store, so nothing needs to be in git.
 * Nix replaces the result link only when the build succeeded: a failed or
 * interrupted build keeps the previous one. The closure the link pointed to
 * before stays a GC root as `result-previous` until the next build replaces
 * it, so a VM still running it keeps its store paths. Progress: a status line
 * on a terminal, a line every 10 s (and at each phase change) in a job log;
 * NIXOS_CLOSURE_PROGRESS=off gives Nix's own output.
 *
 * @param config_dir The config dir render_config returned (locked by lock_config).
 * @param plan_only Only report what the build would build and fetch (nix build --dry-run).
 * @param nix_settings The flow's nix group: builders, substituters, trusted_public_keys, max_jobs, cores, options, and publish_to (store URIs to copy the closure to, with substitute_on_destination).
 */
import { existsSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { readBootInfo } from "./bootspec.ts";
import { type ClosureReport, closureDiff, closureSummary, formatClosureReport, parseDiffClosures } from "./closure_report.ts";
import { withConfigDirLock } from "./dir_lock.ts";
import { existingConfigDir } from "./environment.ts";
import { SetupError } from "./errors.ts";
import * as log from "./log.ts";
import {
  addGcRoot,
  build,
  copyTo,
  diffClosures,
  dryRun,
  locateNix,
  type Nix,
  type PathInfo,
  pathInfo,
  withSettings,
} from "./nix.ts";
import { type NixSettings, nixSettings, settingsArgs } from "./nix_settings.ts";
import { type BuildPlan, formatPlan } from "./plan.ts";
import { BuildProgress, ProgressReporter } from "./progress.ts";
import { pathFlakeRef } from "./render.ts";

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
}

export interface Delivery {
  uri: string;
  paths: number;
  nar_size: number;
}

export interface PlanResult {
  config_dir: string;
  plan: BuildPlan;
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

async function closureReport(nix: Nix, infos: PathInfo[], toplevel: string, previous: string | null): Promise<ClosureReport> {
  const report: ClosureReport = closureSummary(infos);
  if (previous !== null) {
    report.previous = previous;
    if (previous === toplevel) {
      report.diff = { added: [], removed: [], changes: [] };
    } else {
      const before = await pathInfo(nix, [previous], { recursive: true });
      const changes = parseDiffClosures(await diffClosures(nix, previous, toplevel));
      report.diff = closureDiff(
        before.map((i) => i.path),
        infos.map((i) => i.path),
        changes,
      );
    }
  }
  return report;
}

function progressDisplay(): { tracker: BuildProgress; reporter: ProgressReporter } | null {
  if ((process.env.NIXOS_CLOSURE_PROGRESS ?? "auto") === "off") return null;
  const tracker = new BuildProgress();
  const reporter = new ProgressReporter(tracker, {
    tty: Boolean(process.stderr.isTTY),
    write: (text) => process.stderr.write(text),
    columns: process.stderr.columns ?? 120,
  });
  return { tracker, reporter };
}

const seconds = (ms: number) => Math.round(ms) / 1000;

/** Copies the closure to each publish_to store; a failure names the URI and keeps the local build. */
async function deliver(nix: Nix, toplevel: string, infos: PathInfo[], settings: NixSettings): Promise<Delivery[]> {
  if (settings.publishTo.length === 0) return [];
  const sizes = new Map(infos.map((i) => [i.path, i.narSize]));
  const delivered: Delivery[] = [];
  for (const uri of settings.publishTo) {
    const copied = await copyTo(nix, uri, [toplevel], { substituteOnDestination: settings.substituteOnDestination });
    const bytes = copied.reduce((n, p) => n + (sizes.get(p) ?? 0), 0);
    log.info(`delivered to ${uri}: ${copied.length} of ${infos.length} paths, ${bytes} bytes (the destination had the rest)`);
    delivered.push({ uri, paths: copied.length, nar_size: bytes });
  }
  return delivered;
}

export async function main(
  config_dir: string,
  plan_only: boolean = false,
  nix_settings: object = {},
): Promise<BuildClosureResult | PlanResult> {
  const settings = nixSettings(nix_settings);
  const dir = existingConfigDir(config_dir);
  const nix = withSettings(await locateNix(), settingsArgs(settings));
  log.info(`using ${nix.version.text} at ${nix.program}`);
  const installable = `${pathFlakeRef(dir)}#toplevel`;
  if (plan_only) {
    const plan = await dryRun(nix, installable);
    log.info(formatPlan(plan));
    return { config_dir: dir, plan };
  }
  return withConfigDirLock(dir, "build_closure", async () => {
    const resultLink = join(dir, "result");
    const previous = currentResult(resultLink);
    const started = performance.now();
    const progress = progressDisplay();
    const [built] = await build(nix, installable, { outLink: resultLink, progress });
    const totalMs = performance.now() - started;
    const toplevel = built?.outputs.out;
    if (toplevel === undefined) throw new SetupError(`nix build ${installable} reported no output path`);
    if (previous !== null && previous !== toplevel) await addGcRoot(nix, previous, join(dir, "result-previous"));

    const boot = readBootInfo(toplevel);
    for (const warning of boot.warnings) log.warn(warning);
    const infos = await pathInfo(nix, [toplevel], { recursive: true });
    const closure = await closureReport(nix, infos, toplevel, previous);
    log.info(`toplevel ${toplevel}\ninit     ${boot.init}\ninitrd   ${boot.initrd ?? "(none)"}`);
    log.info(formatClosureReport(closure));

    const published = await deliver(nix, toplevel, infos, settings);

    const evaluationMs = progress?.tracker.evaluationMs ?? null;
    return {
      config_dir: dir,
      toplevel,
      init: boot.init,
      initrd: boot.initrd,
      boot_json: boot.bootJson,
      closure,
      built: progress?.tracker.built ?? [],
      plan:
        progress && progress.tracker.plan.derivations.length + progress.tracker.plan.fetch.length > 0
          ? progress.tracker.plan
          : null,
      timing: {
        evaluation_seconds: evaluationMs === null ? null : seconds(evaluationMs),
        build_seconds: evaluationMs === null ? null : seconds(totalMs - evaluationMs),
        total_seconds: seconds(totalMs),
      },
      substituted: progress?.tracker.substituted ?? [],
      unreachable_builders: progress?.tracker.unreachableBuilders ?? [],
      published,
    };
  });
}
