// Shows a build's progress to the operator. On a terminal: a live block
// redrawn in place (each running build with its phase, its time and its
// latest log line, then the counts), with text scrolling above it. In a job
// log, a pipe or under TERM=dumb: plain lines, every 10 s and at each phase
// change, and never an escape sequence. Either way a finished build ends with
// one summary line.
import { formatBytes, formatClock, formatSeconds, plural } from "../../core/format.ts";
import type { Logger, Style } from "../../core/log.ts";
import { type BlockLine, fitColumns, LiveArea, printable } from "./live_area.ts";
import type { BuildProgress, Phase, Progress, RunningBuild } from "./tracker.ts";

/** `3/17 built, 1 failed, 120/900 fetched (45.2 MiB of 210.0 MiB)` */
function counts(p: Progress): string {
  const parts = [`${p.built}/${p.toBuild} built`];
  if (p.failed > 0) parts.push(`${p.failed} failed`);
  if (p.toFetch > 0)
    parts.push(`${p.fetched}/${p.toFetch} fetched (${formatBytes(p.bytesFetched)} of ${formatBytes(p.bytesToFetch)})`);
  return parts.join(", ");
}

function runningBuild(b: RunningBuild): string {
  return `${b.name} ${formatClock(b.elapsedMs)}${b.phase ? ` ${b.phase}` : ""}`;
}

/** One line, for a job log: `[01:23] building: 3/17 built, 120/900 fetched (45.2 MiB of 210.0 MiB); now: linux-6.1 00:42 buildPhase` */
export function formatProgress(p: Progress): string {
  const parts = [`[${formatClock(p.elapsedMs)}] ${p.phase}`];
  if (p.phase !== "evaluating") {
    parts.push(`: ${counts(p)}`);
    if (p.building.length > 0) {
      const shown = p.building.slice(0, 3).map(runningBuild);
      parts.push(`; now: ${shown.join(", ")}${p.building.length > 3 ? ` and ${p.building.length - 3} more` : ""}`);
    }
  }
  return parts.join("");
}

/**
 * The live block for a terminal `width` columns wide, at most `height` lines:
 * a line per running build (name, time, phase, latest log line), then the
 * status line. Every line is shorter than the width, so none wraps.
 */
function liveBlock(p: Progress, width: number, height: number, style: Style): BlockLine[] {
  const room = width - 1;
  const lines: BlockLine[] = [];
  const shownBuilds = p.building.slice(0, Math.max(0, height - 2));
  const nameWidth = Math.min(40, Math.max(0, ...shownBuilds.map((b) => b.name.length)));
  const phaseWidth = Math.max(0, ...shownBuilds.map((b) => b.phase?.length ?? 0));
  for (const b of shownBuilds) {
    // The time first: a narrow window cuts the log line, then the name, last of all the time.
    const clock = `  ${formatClock(b.elapsedMs)}  `;
    const name = fitColumns(b.name, nameWidth).padEnd(nameWidth);
    const phase = phaseWidth > 0 ? `  ${(b.phase ?? "").padEnd(phaseWidth)}` : "";
    const last = b.lastLine ? `  ${printable(b.lastLine)}` : "";
    const plain = fitColumns(`${clock}${name}${phase}${last}`.trimEnd(), room);
    const nameEnd = Math.min(plain.length, clock.length + nameWidth);
    lines.push({
      plain,
      styled: `${style.dim(plain.slice(0, clock.length))}${style.bold(plain.slice(clock.length, nameEnd))}${style.dim(plain.slice(nameEnd))}`,
    });
  }
  const hidden = p.building.length - shownBuilds.length;
  if (hidden > 0 && height >= 2) {
    const plain = fitColumns(`  and ${hidden} more`, room);
    lines.push({ plain, styled: style.dim(plain) });
  }
  const clock = `[${formatClock(p.elapsedMs)}]`;
  const status = p.phase === "evaluating" ? "" : `: ${counts(p)}`;
  const plain = fitColumns(`${clock} ${p.phase}${status}`, room);
  const phaseEnd = Math.min(plain.length, clock.length + 1 + p.phase.length);
  lines.push({
    plain,
    styled: `${style.dim(plain.slice(0, clock.length))}${style.bold(plain.slice(clock.length, phaseEnd))}${plain.slice(phaseEnd)}`,
  });
  return lines;
}

/** How a build ended. */
export type Outcome = "succeeded" | "failed" | "interrupted";

/** The one line a finished build ends with: what was built and fetched, and the time it took. */
function formatSummary(progress: BuildProgress, elapsedMs: number, outcome: Outcome): string {
  const built = progress.built.length;
  const fetched = progress.substituted.length;
  const bytes = progress.snapshot().bytesFetched;
  const did: string[] = [];
  if (built > 0) did.push(`built ${plural(built, "derivation")}`);
  if (fetched > 0) did.push(`fetched ${plural(fetched, "path")} (${formatBytes(bytes)})`);
  const time = formatSeconds(elapsedMs / 1000);
  if (outcome !== "succeeded") {
    const failed = progress.failedBuilds.map((drv) => drv.replace(/^.*\/[a-z0-9]{32}-/, "").replace(/\.drv$/, ""));
    const what =
      outcome === "interrupted"
        ? "interrupted"
        : failed.length > 0
          ? `${failed.join(", ")} failed`
          : progress.evaluationMs === null
            ? "evaluation failed"
            : "the build failed";
    return `${what} after ${time}${did.length > 0 ? ` (${did.join(", ")} before that)` : ""}`;
  }
  return did.length > 0 ? `${did.join(" and ")} in ${time}` : `nothing to build or fetch (${time})`;
}

export interface ReporterOptions {
  now?: () => number;
}

/** Milliseconds between plain progress lines in a job log; phase changes always print. */
const JOB_LOG_INTERVAL_MS = 10_000;
/** At most ten redraws a second on a terminal; timers tick once a second when Nix is silent. */
const REDRAW_MS = 100;
const TICK_MS = 1000;

/** Shows a BuildProgress to the operator, on a terminal or in a job log. */
export class ProgressReporter {
  private lastLine = "";
  private lastPrintedAt = Number.NEGATIVE_INFINITY;
  private lastSnapshotAt = Number.NEGATIVE_INFINITY;
  private lastPhase: Phase | null = null;
  private readonly now: () => number;
  private readonly area: LiveArea | null;
  private readonly quiet: boolean;
  private readonly stopTicking: () => void;

  constructor(
    private readonly progress: BuildProgress,
    private readonly log: Logger,
    options: ReporterOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.quiet = log.verbosity === "quiet";
    const terminal = this.quiet ? null : log.terminal;
    this.area = terminal ? new LiveArea(log, terminal) : null;
    // Timers tick on the real clock only (a test drives its own); a resize redraws at once.
    const ticking = options.now === undefined;
    if (terminal) {
      const tick = ticking ? setInterval(() => this.update(true), TICK_MS) : undefined;
      tick?.unref();
      const unsubscribe = terminal.onResize(() => this.update(true));
      this.stopTicking = () => {
        clearInterval(tick);
        unsubscribe();
      };
    } else if (!this.quiet && ticking) {
      // A silent build still gets its line in a job log every 10 s.
      const tick = setInterval(() => this.update(), JOB_LOG_INTERVAL_MS);
      tick.unref();
      this.stopTicking = () => clearInterval(tick);
    } else {
      this.stopTicking = () => {};
    }
  }

  /** Feeds a stderr line of Nix; shows what is worth showing. */
  line(raw: string): void {
    const shown = this.progress.handle(raw);
    if (this.quiet) return;
    if (this.area && shown.length > 0) {
      this.lastSnapshotAt = this.now();
      this.area.draw(this.block(), shown.map(printable));
      return;
    }
    // Builder output may carry escapes: a job log or a pipe gets the text alone.
    for (const text of shown) this.log.write(`${printable(text)}\n`);
    this.update(shown.length > 0);
  }

  private block() {
    const terminal = this.log.terminal;
    // The block and the cursor's row fit in the window: a taller block would scroll
    // its top rows out of reach, and the next redraw would leave them behind.
    const height = Math.max(1, Math.min(12, (terminal?.rows ?? 24) - 1));
    return liveBlock(this.progress.snapshot(), terminal?.columns ?? 80, height, this.log.style);
  }

  /**
   * Redraws or prints the status when due. A snapshot walks every activity,
   * and Nix sends many events a second, so it is taken at most every 100 ms
   * on a terminal and every second in a job log (sooner when text was shown).
   */
  update(force = false): void {
    if (this.quiet) return;
    const now = this.now();
    if (!force && now - this.lastSnapshotAt < (this.area ? REDRAW_MS : 1000)) return;
    this.lastSnapshotAt = now;
    if (this.area) {
      this.area.draw(this.block());
      return;
    }
    const snapshot = this.progress.snapshot();
    const line = formatProgress(snapshot);
    const phaseChanged = snapshot.phase !== this.lastPhase;
    const due = now - this.lastPrintedAt >= JOB_LOG_INTERVAL_MS;
    if (phaseChanged || (due && line.replace(/^\[[^\]]*\] /, "") !== this.lastLine.replace(/^\[[^\]]*\] /, ""))) {
      this.log.write(`${line}\n`);
      this.lastLine = line;
      this.lastPrintedAt = now;
      this.lastPhase = snapshot.phase;
    }
  }

  /** Ends the display: the live block goes, and one summary line stays. */
  finish(outcome: Outcome): void {
    this.stopTicking();
    if (this.quiet) return;
    const summary = formatSummary(this.progress, this.now() - this.progress.startedAt, outcome);
    const style = this.log.style;
    if (this.area) this.area.draw([], [outcome === "succeeded" ? style.green(summary) : style.red(summary)]);
    else this.log.write(`${summary}\n`);
  }
}
