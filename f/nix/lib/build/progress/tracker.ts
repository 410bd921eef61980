// Turns Nix's internal-json events into the state of a build: derivations
// built of total, paths and bytes fetched, what is building now (each with
// its phase, its time and its latest log line), elapsed time, the plan, and
// the log of a derivation that failed. Unknown event and activity types are
// ignored; lines that are not events pass through as text. Showing that state
// is display.ts's job.
import { plural } from "../../core/format.ts";
import { ActivityType, type NixEvent, parseLogLine, ResultType } from "../../nix/events.ts";
import { type BuildPlan, drvName, formatPlan, PlanCollector } from "../plan.ts";
import { Activities, total } from "./activities.ts";

export type Phase = "evaluating" | "building" | "fetching" | "building and fetching" | "finishing";

export interface Progress {
  elapsedMs: number;
  phase: Phase;
  built: number;
  toBuild: number;
  failed: number;
  fetched: number;
  toFetch: number;
  bytesFetched: number;
  bytesToFetch: number;
  building: RunningBuild[];
}

export interface RunningBuild {
  name: string;
  phase: string | null;
  elapsedMs: number;
  /** The builder's latest non-empty log line, or null. */
  lastLine: string | null;
}

export interface TrackerOptions {
  /** Show every builder's log lines, `name> line`, as `nix build -L` does. */
  buildLogs?: boolean;
  /** Show Nix's own messages and activities (what `nix build` prints without a progress display). */
  chatter?: boolean;
}

/** A derivation's own builder failed: `builder for '<drv>' failed ...`, in newer Nix (2.34) `Cannot build '<drv>'.\n Reason: builder failed ...`. */
const FAILED_BUILDER = /builder for '([^']+\.drv)' failed|Cannot build '([^']+\.drv)'\.\s+Reason: builder failed/;
/** Lines of a failed builder's log its error shows (Nix's own `log-lines` default of 2.20 on). */
const FAILED_LOG_LINES = 25;
const UNREACHABLE_BUILDER = /cannot build on '([^']+)':(?:\s*error:)?(.*)/;

/** Messages the evaluation itself prints at Nix's error level: traces (NixOS's warnings among them). */
const EVALUATION_OUTPUT = /^(?:trace|evaluation warning): /;

export class BuildProgress {
  readonly startedAt: number;
  evaluationMs: number | null = null;
  /** Nix's info-level lines: from 2.19 on they start with the build plan. */
  private readonly planLines = new PlanCollector();
  /** Derivations that finished building, by store path. */
  readonly built: string[] = [];
  /** Error and warning text, plain lines included: what Nix would have printed. */
  readonly messages: string[] = [];
  /** Remote builders Nix could not use (it then builds locally). */
  readonly unreachableBuilders: string[] = [];
  /** Store paths substituted from a binary cache. */
  readonly substituted: string[] = [];
  /** Derivations whose builder failed, by store path. */
  readonly failedBuilds: string[] = [];
  private readonly activities = new Activities();
  private readonly builtSet = new Set<string>();
  private readonly failedDrvs = new Set<string>();
  private readonly now: () => number;
  private readonly options: TrackerOptions;
  private interrupted = false;

  constructor(now: () => number = () => performance.now(), options: TrackerOptions = {}) {
    this.now = now;
    this.options = options;
    this.startedAt = now();
  }

  /**
   * The step was interrupted: the builds Nix stops from now on were killed,
   * not built (their stop events look the same as a finished build's).
   */
  interrupt(): void {
    this.interrupted = true;
  }

  /**
   * Takes one stderr line. Returns the lines to show the operator now
   * (warnings, plain text, a failed derivation's log), possibly none.
   */
  handle(line: string): string[] {
    const event = parseLogLine(line);
    const isPlanLine = event.action === "msg" && event.level === 3 && PlanCollector.isPlanText(event.msg);
    const plan = this.planLines.pending && !isPlanLine ? this.announcePlan() : [];
    return [...plan, ...this.apply(event)];
  }

  private endEvaluation(): void {
    if (this.evaluationMs === null) this.evaluationMs = this.now() - this.startedAt;
  }

  private apply(event: NixEvent): string[] {
    switch (event.action) {
      case "text":
        this.messages.push(event.text);
        return [event.text];
      case "msg":
        return this.message(event.level, event.msg);
      case "start": {
        if (
          ([ActivityType.realise, ActivityType.builds, ActivityType.copyPaths, ActivityType.build] as number[]).includes(
            event.type,
          )
        ) {
          this.endEvaluation();
        }
        const drvPath = event.type === ActivityType.build && typeof event.fields[0] === "string" ? event.fields[0] : null;
        if (event.type === ActivityType.substitute && typeof event.fields[0] === "string") this.substituted.push(event.fields[0]);
        this.activities.start(event.id, event.type, drvPath, this.now());
        // What Nix itself prints at its default verbosity: "building '...'", "copying path '...' from '...'".
        return this.options.chatter && event.level <= 3 && event.text !== "" ? [event.text] : [];
      }
      case "stop": {
        const activity = this.activities.stop(event.id);
        if (activity?.type === ActivityType.build && activity.drvPath && !this.isFailed(activity.drvPath) && !this.interrupted) {
          this.built.push(activity.drvPath);
          this.builtSet.add(activity.drvPath);
        }
        return [];
      }
      case "result": {
        const activity = this.activities.result(event.id, event.type, event.fields);
        if (this.options.buildLogs && event.type === ResultType.buildLogLine && activity?.drvPath) {
          return [`${drvName(activity.drvPath)}> ${String(event.fields[0] ?? "")}`];
        }
        return [];
      }
      case "unknown":
        return [];
    }
  }

  private isFailed(drvPath: string): boolean {
    return this.failedDrvs.has(drvPath);
  }

  private message(level: number, text: string): string[] {
    for (const line of text.split("\n")) this.planLine(level, line);
    const builder = UNREACHABLE_BUILDER.exec(text);
    if (builder) {
      const [, uri = "", why = ""] = builder;
      if (!this.unreachableBuilders.includes(uri)) this.unreachableBuilders.push(uri);
      return [`note: remote builder ${uri} is unreachable (${why.trim()}); Nix builds on this machine instead`];
    }
    if (level > 2) return this.options.chatter && level === 3 && !PlanCollector.isPlanText(text) ? text.split("\n") : [];
    this.messages.push(...text.split("\n"));
    const match = FAILED_BUILDER.exec(text);
    const failed = match?.[1] ?? match?.[2];
    if (level === 0 && failed) {
      this.messages.push(...this.failureLines(failed));
      this.failedDrvs.add(failed);
      const index = this.built.indexOf(failed);
      if (index >= 0) this.built.splice(index, 1);
      this.builtSet.delete(failed);
      this.failedBuilds.push(failed);
    }
    // Errors are the step's to report, once, when Nix has exited. What the evaluation printed at error level
    // (builtins.trace, and so NixOS's lib.warn; builtins.warn) is not an error: the operator sees it now.
    return level === 0 && !EVALUATION_OUTPUT.test(text) ? [] : text.split("\n");
  }

  /**
   * What the error about a failed builder adds, as Nix does without
   * internal-json: its last lines (unless they were just shown with
   * --print-build-logs), and how to read all of them.
   */
  private failureLines(drvPath: string): string[] {
    const tail = this.options.buildLogs ? [] : this.activities.logOf(drvPath).slice(-FAILED_LOG_LINES);
    return [
      ...(tail.length > 0 ? [`       last ${plural(tail.length, "log line")}:`, ...tail.map((l) => `       > ${l}`)] : []),
      `       For full logs, run 'nix log ${drvPath}'.`,
    ];
  }

  /** Nix 2.19+ print what they will build and fetch at level info, before building. */
  private planLine(level: number, line: string): void {
    if (level === 3 && this.planLines.take(line)) this.endEvaluation();
  }

  /** The plan as one summary, once Nix has listed it (Nix before 2.19 lists none). */
  private announcePlan(): string[] {
    this.planLines.pending = false;
    return formatPlan(this.plan).split("\n");
  }

  /** The plan Nix reported as the build started (empty on Nix before 2.19, which does not report it). */
  get plan(): BuildPlan {
    return this.planLines.plan;
  }

  snapshot(): Progress {
    const builds = this.activities.ofType(ActivityType.builds);
    const copies = this.activities.ofType(ActivityType.copyPaths);
    const building = this.activities
      .ofType(ActivityType.build)
      .filter(
        (a) =>
          a.running !== 0 || (a.drvPath !== null && !a.stopped && !this.builtSet.has(a.drvPath) && !this.isFailed(a.drvPath)),
      )
      .map((a) => ({
        name: drvName(a.drvPath ?? "?"),
        phase: a.phase,
        elapsedMs: this.now() - a.startedAt,
        lastLine: a.log.findLast((line) => line.trim() !== "") ?? null,
      }));
    const bytesFetched = total(this.activities.ofType(ActivityType.copyPath), "done");
    const toBuild = Math.max(total(builds, "expected"), this.plan.derivations.length);
    const toFetch = Math.max(total(copies, "expected"), this.plan.fetch.length);
    const fetching = total(copies, "done") < toFetch;
    const inBuild = building.length > 0 || total(builds, "done") < toBuild;
    const realising = this.activities.ofType(ActivityType.realise).some((a) => !a.stopped);
    let phase: Phase = "evaluating";
    if (this.evaluationMs !== null) {
      if (!realising && !inBuild && !fetching) phase = "finishing";
      else phase = inBuild && fetching ? "building and fetching" : fetching ? "fetching" : "building";
    }
    return {
      elapsedMs: this.now() - this.startedAt,
      phase,
      built: total(builds, "done"),
      toBuild,
      failed: total(builds, "failed"),
      fetched: total(copies, "done"),
      toFetch,
      bytesFetched,
      bytesToFetch: Math.max(this.activities.expected(ActivityType.copyPath), bytesFetched),
      building,
    };
  }
}
