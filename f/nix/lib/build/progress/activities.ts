// Nix's activities as its internal-json events report them: one record per
// activity id (its type, the derivation it builds, its phase, its counters,
// its log), and the totals Nix expects per activity type.
import { count, type Field, ResultType } from "../../nix/events.ts";

export interface Activity {
  type: number;
  drvPath: string | null;
  phase: string | null;
  done: number;
  expected: number;
  running: number;
  failed: number;
  stopped: boolean;
  /** When it started, on the tracker's clock. */
  startedAt: number;
  log: string[];
}

/** Log lines kept per activity: enough for a failed builder's tail. */
const LOG_LINES_KEPT = 500;

export class Activities {
  private readonly byId = new Map<string, Activity>();
  private readonly expectedByType = new Map<string, number>();

  start(id: string, type: number, drvPath: string | null, startedAt: number): void {
    this.byId.set(id, {
      type,
      drvPath,
      phase: null,
      done: 0,
      expected: 0,
      running: 0,
      failed: 0,
      stopped: false,
      startedAt,
      log: [],
    });
  }

  /** Marks an activity finished; returns it, when it was known. */
  stop(id: string): Activity | undefined {
    const activity = this.byId.get(id);
    if (activity) {
      activity.running = 0;
      activity.stopped = true;
    }
    return activity;
  }

  /** Records a result; returns the activity it belongs to, when known. */
  result(id: string, type: number, fields: Field[]): Activity | undefined {
    const activity = this.byId.get(id);
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
    return activity;
  }

  ofType(type: number): Activity[] {
    return [...this.byId.values()].filter((a) => a.type === type);
  }

  /** What Nix expects of activities of `type`, over all parents (bytes for copyPath). */
  expected(type: number): number {
    let total = 0;
    for (const [key, n] of this.expectedByType) if (key.endsWith(`:${type}`)) total += n;
    return total;
  }

  /** The log lines of the build of a derivation. */
  logOf(drvPath: string): string[] {
    return [...this.byId.values()].find((a) => a.drvPath === drvPath)?.log ?? [];
  }
}

/** Sums one counter over activities. */
export function total(list: readonly Activity[], key: "done" | "expected" | "running" | "failed"): number {
  return list.reduce((n, a) => n + a[key], 0);
}
