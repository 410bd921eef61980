// Turns Nix's internal-json events into the state of a build: derivations
// built of total, paths and bytes fetched, what is building now, elapsed time,
// the plan, and the log of a derivation that failed. Unknown event and
// activity types are ignored; lines that are not events pass through as text.
// Showing that state is display.ts's job.
import { ActivityType, type NixEvent, parseLogLine } from "../../nix/events.ts";
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
  building: { name: string; phase: string | null }[];
}

const FAILED_BUILDER = /builder for '([^']+\.drv)' failed/;
const UNREACHABLE_BUILDER = /cannot build on '([^']+)':(?:\s*error:)?(.*)/;

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
  private readonly activities = new Activities();
  private readonly builtSet = new Set<string>();
  private readonly failedDrvs = new Set<string>();
  private readonly now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.now = now;
    this.startedAt = now();
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
        this.activities.start(event.id, event.type, drvPath);
        return [];
      }
      case "stop": {
        const activity = this.activities.stop(event.id);
        if (activity?.type === ActivityType.build && activity.drvPath && !this.isFailed(activity.drvPath)) {
          this.built.push(activity.drvPath);
          this.builtSet.add(activity.drvPath);
        }
        return [];
      }
      case "result":
        this.activities.result(event.id, event.type, event.fields);
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
    if (level > 2) return [];
    this.messages.push(...text.split("\n"));
    const failed = FAILED_BUILDER.exec(text)?.[1];
    if (level === 0 && failed) {
      // As Nix does without internal-json: the error carries the builder's last lines.
      const tail = this.activities.logOf(failed).slice(-10);
      if (tail.length > 0) this.messages.push(`       last ${tail.length} log lines:`, ...tail.map((l) => `       > ${l}`));
      this.failedDrvs.add(failed);
      const index = this.built.indexOf(failed);
      if (index >= 0) this.built.splice(index, 1);
      this.builtSet.delete(failed);
      return this.failedLog(failed);
    }
    return level === 0 ? [] : text.split("\n");
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

  private failedLog(drvPath: string): string[] {
    const lines = this.activities.logOf(drvPath);
    if (lines.length === 0) return [`${drvName(drvPath)} failed and printed nothing`];
    return [
      `----- last ${lines.length} log lines of ${drvName(drvPath)} -----`,
      ...lines,
      `----- end of ${drvName(drvPath)} log -----`,
    ];
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
      .map((a) => ({ name: drvName(a.drvPath ?? "?"), phase: a.phase }));
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
