// Shows a build's progress to the operator: one status line redrawn in place
// on a terminal, plain lines in a job log (every 10 s and at each phase
// change).
import { formatBytes, formatClock } from "../../core/format.ts";
import type { Logger } from "../../core/log.ts";
import type { BuildProgress, Phase, Progress } from "./tracker.ts";

/** One line: `[01:23] building: 3/17 built, 120/900 fetched (45.2 MiB/210.0 MiB); now: linux-6.1 (buildPhase)` */
export function formatProgress(p: Progress): string {
  const parts = [`[${formatClock(p.elapsedMs)}] ${p.phase}`];
  if (p.phase !== "evaluating") {
    const counts = [`${p.built}/${p.toBuild} built${p.failed > 0 ? `, ${p.failed} failed` : ""}`];
    if (p.toFetch > 0)
      counts.push(`${p.fetched}/${p.toFetch} fetched (${formatBytes(p.bytesFetched)}/${formatBytes(p.bytesToFetch)})`);
    parts.push(`: ${counts.join(", ")}`);
    if (p.building.length > 0) {
      const shown = p.building.slice(0, 3).map((b) => (b.phase ? `${b.name} (${b.phase})` : b.name));
      parts.push(`; now: ${shown.join(", ")}${p.building.length > 3 ? ` +${p.building.length - 3} more` : ""}`);
    }
  }
  return parts.join("");
}

export interface ReporterOptions {
  now?: () => number;
}

/** Milliseconds between plain progress lines in a job log; phase changes always print. */
const JOB_LOG_INTERVAL_MS = 10_000;

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
    private readonly log: Logger,
    options: ReporterOptions = {},
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
    if (this.log.terminal && this.statusShown) this.log.write("\r\x1b[K");
    this.log.write(`${text}\n`);
    if (this.log.terminal && this.statusShown) this.log.write(this.lastLine);
  }

  /**
   * Redraws or prints the status when due. A snapshot walks every activity,
   * and Nix sends many events a second, so it is taken at most every 100 ms
   * on a terminal and every second in a job log (sooner when text was shown).
   */
  update(force = false): void {
    const now = this.now();
    if (!force && now - this.lastSnapshotAt < (this.log.terminal ? 100 : 1000)) return;
    this.lastSnapshotAt = now;
    const snapshot = this.progress.snapshot();
    const line = formatProgress(snapshot);
    if (this.log.terminal) {
      const width = this.log.terminal.columns;
      const fitted = line.length > width - 1 ? `${line.slice(0, width - 2)}…` : line;
      if (fitted !== this.lastLine || !this.statusShown) this.log.write(`\r\x1b[K${fitted}`);
      this.lastLine = fitted;
      this.statusShown = true;
      return;
    }
    const phaseChanged = snapshot.phase !== this.lastPhase;
    const due = this.now() - this.lastPrintedAt >= JOB_LOG_INTERVAL_MS;
    if (phaseChanged || (due && line.replace(/^\[[^\]]*\] /, "") !== this.lastLine.replace(/^\[[^\]]*\] /, ""))) {
      this.log.write(`${line}\n`);
      this.lastLine = line;
      this.lastPrintedAt = this.now();
      this.lastPhase = snapshot.phase;
    }
  }

  /** Ends the display: the final state on its own line. */
  finish(): void {
    const line = formatProgress(this.progress.snapshot());
    if (this.log.terminal) {
      this.log.write(`\r\x1b[K${line}\n`);
    } else if (line !== this.lastLine) {
      this.log.write(`${line}\n`);
    }
  }
}
