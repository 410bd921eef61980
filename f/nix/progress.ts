// Turns Nix's internal-json events into what an operator watches: derivations
// built of total, paths and bytes fetched, what is building now, elapsed time,
// and the log of a derivation that failed. Unknown event and activity types
// are ignored; lines that are not events pass through as text.
import { ActivityType, count, type Field, type NixEvent, parseLogLine, ResultType } from "./nix_log.ts";
import { type BuildPlan, DERIVATIONS_HEADER, drvName, FETCH_HEADER, formatPlan, parsePlan } from "./plan.ts";

export type Phase = "evaluating" | "building" | "fetching" | "building and fetching" | "finishing";

interface Activity {
  type: number;
  drvPath: string | null;
  phase: string | null;
  done: number;
  expected: number;
  running: number;
  failed: number;
  stopped: boolean;
  log: string[];
}

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

const LOG_LINES_KEPT = 500;
const FAILED_BUILDER = /builder for '([^']+\.drv)' failed/;
const UNREACHABLE_BUILDER = /cannot build on '([^']+)':(?:\s*error:)?(.*)/;

export class BuildProgress {
  readonly startedAt: number;
  evaluationMs: number | null = null;
  /** Nix's info-level lines: from 2.19 on they start with the build plan. */
  private readonly infoLines: string[] = [];
  /** Derivations that finished building, by store path. */
  readonly built: string[] = [];
  /** Error and warning text, plain lines included: what Nix would have printed. */
  readonly messages: string[] = [];
  /** Remote builders Nix could not use (it then builds locally). */
  readonly unreachableBuilders: string[] = [];
  /** Store paths substituted from a binary cache. */
  readonly substituted: string[] = [];
  private readonly activities = new Map<string, Activity>();
  private readonly builtSet = new Set<string>();
  private readonly failedDrvs = new Set<string>();
  private parsedPlan: BuildPlan | null = null;
  private readonly expectedByType = new Map<string, number>();
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
    const isPlanLine = event.action === "msg" && event.level === 3 && this.isPlanText(event.msg);
    const plan = this.planPending && !isPlanLine ? this.announcePlan() : [];
    return [...plan, ...this.apply(event)];
  }

  private isPlanText(text: string): boolean {
    return text.split("\n").every((l) => DERIVATIONS_HEADER.test(l) || FETCH_HEADER.test(l) || /^\s+\/nix\/store\//.test(l));
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
        this.activities.set(event.id, {
          type: event.type,
          drvPath,
          phase: null,
          done: 0,
          expected: 0,
          running: 0,
          failed: 0,
          stopped: false,
          log: [],
        });
        return [];
      }
      case "stop": {
        const activity = this.activities.get(event.id);
        if (activity?.type === ActivityType.build && activity.drvPath && !this.isFailed(activity.drvPath)) {
          this.built.push(activity.drvPath);
          this.builtSet.add(activity.drvPath);
        }
        if (activity) {
          activity.running = 0;
          activity.stopped = true;
        }
        return [];
      }
      case "result":
        this.result(event.id, event.type, event.fields);
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
      const tail = this.logOf(failed).slice(-10);
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
    if (level !== 3) return;
    this.infoLines.push(line);
    this.parsedPlan = null;
    if (DERIVATIONS_HEADER.test(line) || FETCH_HEADER.test(line)) {
      this.endEvaluation();
      this.planPending = true;
    }
  }

  private planPending = false;

  /** The plan as one summary, once Nix has listed it (Nix before 2.19 lists none). */
  private announcePlan(): string[] {
    this.planPending = false;
    return formatPlan(this.plan).split("\n");
  }

  /** The plan Nix reported as the build started (empty on Nix before 2.19, which does not report it). */
  get plan(): BuildPlan {
    this.parsedPlan ??= parsePlan(this.infoLines);
    return this.parsedPlan;
  }

  private logOf(drvPath: string): string[] {
    return [...this.activities.values()].find((a) => a.drvPath === drvPath)?.log ?? [];
  }

  private failedLog(drvPath: string): string[] {
    const lines = this.logOf(drvPath);
    if (lines.length === 0) return [`${drvName(drvPath)} failed and printed nothing`];
    return [
      `----- last ${lines.length} log lines of ${drvName(drvPath)} -----`,
      ...lines,
      `----- end of ${drvName(drvPath)} log -----`,
    ];
  }

  private result(id: string, type: number, fields: Field[]): void {
    const activity = this.activities.get(id);
    if (type === ResultType.buildLogLine && activity) {
      activity.log.push(String(fields[0] ?? ""));
      if (activity.log.length > LOG_LINES_KEPT) activity.log.shift();
    } else if (type === ResultType.setPhase && activity) {
      activity.phase = String(fields[0] ?? "");
    } else if (type === ResultType.progress && activity) {
      activity.done = count(fields[0]) ?? activity.done;
      activity.expected = count(fields[1]) ?? activity.expected;
      activity.running = count(fields[2]) ?? 0;
      activity.failed = count(fields[3]) ?? 0;
    } else if (type === ResultType.setExpected) {
      const ofType = count(fields[0]);
      const expected = count(fields[1]);
      if (ofType !== null && expected !== null) this.expectedByType.set(`${id}:${ofType}`, expected);
    }
  }

  private ofType(type: number): Activity[] {
    return [...this.activities.values()].filter((a) => a.type === type);
  }

  private expected(type: number): number {
    let total = 0;
    for (const [key, n] of this.expectedByType) if (key.endsWith(`:${type}`)) total += n;
    return total;
  }

  snapshot(): Progress {
    const builds = this.ofType(ActivityType.builds);
    const copies = this.ofType(ActivityType.copyPaths);
    const sum = (list: Activity[], key: "done" | "expected" | "running" | "failed") => list.reduce((n, a) => n + a[key], 0);
    const building = this.ofType(ActivityType.build)
      .filter(
        (a) =>
          a.running !== 0 || (a.drvPath !== null && !a.stopped && !this.builtSet.has(a.drvPath) && !this.isFailed(a.drvPath)),
      )
      .map((a) => ({ name: drvName(a.drvPath ?? "?"), phase: a.phase }));
    const bytesFetched = sum(this.ofType(ActivityType.copyPath), "done");
    const toBuild = Math.max(sum(builds, "expected"), this.plan.derivations.length);
    const toFetch = Math.max(sum(copies, "expected"), this.plan.fetch.length);
    const fetching = sum(copies, "done") < toFetch;
    const inBuild = building.length > 0 || sum(builds, "done") < toBuild;
    const realising = this.ofType(ActivityType.realise).some((a) => !a.stopped);
    let phase: Phase = "evaluating";
    if (this.evaluationMs !== null) {
      if (!realising && !inBuild && !fetching) phase = "finishing";
      else phase = inBuild && fetching ? "building and fetching" : fetching ? "fetching" : "building";
    }
    return {
      elapsedMs: this.now() - this.startedAt,
      phase,
      built: sum(builds, "done"),
      toBuild,
      failed: sum(builds, "failed"),
      fetched: sum(copies, "done"),
      toFetch,
      bytesFetched,
      bytesToFetch: Math.max(this.expected(ActivityType.copyPath), bytesFetched),
      building,
    };
  }
}

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)}`;
}

/** One line: `[01:23] building: 3/17 built, 120/900 fetched (45.2/210.0 MiB); now: linux-6.1 (buildPhase)` */
export function formatProgress(p: Progress): string {
  const parts = [`[${clock(p.elapsedMs)}] ${p.phase}`];
  if (p.phase !== "evaluating") {
    const counts = [`${p.built}/${p.toBuild} built${p.failed > 0 ? `, ${p.failed} failed` : ""}`];
    if (p.toFetch > 0) counts.push(`${p.fetched}/${p.toFetch} fetched (${mib(p.bytesFetched)}/${mib(p.bytesToFetch)} MiB)`);
    parts.push(`: ${counts.join(", ")}`);
    if (p.building.length > 0) {
      const shown = p.building.slice(0, 3).map((b) => (b.phase ? `${b.name} (${b.phase})` : b.name));
      parts.push(`; now: ${shown.join(", ")}${p.building.length > 3 ? ` +${p.building.length - 3} more` : ""}`);
    }
  }
  return parts.join("");
}

export interface ReporterOptions {
  /** A terminal: one status line redrawn in place. Otherwise plain lines for a job log. */
  tty: boolean;
  write: (text: string) => void;
  columns?: number;
  /** Seconds between plain progress lines (job log); phase changes always print. */
  intervalMs?: number;
  now?: () => number;
}

/** Shows a BuildProgress to the operator, on a terminal or in a job log. */
export class ProgressReporter {
  private lastLine = "";
  private lastPrintedAt = Number.NEGATIVE_INFINITY;
  private lastSnapshotAt = Number.NEGATIVE_INFINITY;
  private lastPhase: Phase | null = null;
  private statusShown = false;
  private readonly now: () => number;

  constructor(
    private readonly progress: BuildProgress,
    private readonly options: ReporterOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Feeds a stderr line of Nix; shows what is worth showing. */
  line(raw: string): void {
    const shown = this.progress.handle(raw);
    for (const text of shown) this.text(text);
    this.update(shown.length > 0);
  }

  private text(text: string): void {
    if (this.options.tty && this.statusShown) this.options.write("\r\x1b[K");
    this.options.write(`${text}\n`);
    if (this.options.tty && this.statusShown) this.options.write(this.lastLine);
  }

  /**
   * Redraws or prints the status when due. A snapshot walks every activity,
   * and Nix sends many events a second, so it is taken at most every 100 ms
   * on a terminal and every second in a job log (sooner when text was shown).
   */
  update(force = false): void {
    const now = this.now();
    if (!force && now - this.lastSnapshotAt < (this.options.tty ? 100 : 1000)) return;
    this.lastSnapshotAt = now;
    const snapshot = this.progress.snapshot();
    const line = formatProgress(snapshot);
    if (this.options.tty) {
      const width = this.options.columns ?? 120;
      const fitted = line.length > width - 1 ? `${line.slice(0, width - 2)}…` : line;
      if (fitted !== this.lastLine || !this.statusShown) this.options.write(`\r\x1b[K${fitted}`);
      this.lastLine = fitted;
      this.statusShown = true;
      return;
    }
    const phaseChanged = snapshot.phase !== this.lastPhase;
    const due = this.now() - this.lastPrintedAt >= (this.options.intervalMs ?? 10_000);
    if (phaseChanged || (due && line.replace(/^\[[^\]]*\] /, "") !== this.lastLine.replace(/^\[[^\]]*\] /, ""))) {
      this.options.write(`${line}\n`);
      this.lastLine = line;
      this.lastPrintedAt = this.now();
      this.lastPhase = snapshot.phase;
    }
  }

  /** Ends the display: the final state on its own line. */
  finish(): void {
    const line = formatProgress(this.progress.snapshot());
    if (this.options.tty) {
      this.options.write(`\r\x1b[K${line}\n`);
    } else if (line !== this.lastLine) {
      this.options.write(`${line}\n`);
    }
  }
}
