// What a build produced: the size of the closure, its largest paths, and what
// changed since the previous build of the same config dir.
import { formatBytes } from "../core/format.ts";
import { stripAnsi } from "../nix/events.ts";
import type { PathInfo } from "../nix/json.ts";
import type { Nix } from "../nix/locate.ts";
import { closureInfo, diffClosures } from "../nix/operations.ts";

export interface StorePathSize {
  path: string;
  nar_size: number;
}

export interface VersionChange {
  name: string;
  /** Versions before and after; empty when the package was absent (Nix shows ∅). */
  from: string[];
  to: string[];
  /** Size change in bytes, when Nix reports one (it omits changes under 8 KiB). */
  size_delta: number | null;
}

export interface ClosureDiff {
  added: string[];
  removed: string[];
  changes: VersionChange[];
}

export interface ClosureReport {
  paths: number;
  nar_size: number;
  largest: StorePathSize[];
  previous?: string;
  diff?: ClosureDiff;
}

/** The report of a build's closure, with what changed since `previous` (the toplevel the result link had). */
export async function closureReport(
  nix: Nix,
  closure: PathInfo[],
  toplevel: string,
  previous: string | null,
): Promise<ClosureReport> {
  const report: ClosureReport = closureSummary(closure);
  if (previous === null) return report;
  report.previous = previous;
  if (previous === toplevel) {
    report.diff = { added: [], removed: [], changes: [] };
  } else {
    const before = await closureInfo(nix, [previous]);
    const changes = parseDiffClosures(await diffClosures(nix, previous, toplevel));
    report.diff = closureDiff(
      before.map((i) => i.path),
      closure.map((i) => i.path),
      changes,
    );
  }
  return report;
}

function closureSummary(infos: readonly PathInfo[], largest = 10): Pick<ClosureReport, "paths" | "nar_size" | "largest"> {
  return {
    paths: infos.length,
    nar_size: infos.reduce((total, info) => total + info.narSize, 0),
    largest: [...infos]
      .sort((a, b) => b.narSize - a.narSize || a.path.localeCompare(b.path))
      .slice(0, largest)
      .map((info) => ({ path: info.path, nar_size: info.narSize })),
  };
}

const versions = (text: string): string[] =>
  text.trim() === "∅"
    ? []
    : text
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== "");

/**
 * Parses `nix store diff-closures` lines: `name: 1.0 → 1.1, +12.3 KiB`,
 * `name: ∅ → 2.0`, `name: -8.5 KiB`. Nix colours them even with NO_COLOR
 * set, so terminal escapes are removed first.
 */
export function parseDiffClosures(text: string): VersionChange[] {
  return stripAnsi(text)
    .split("\n")
    .filter((line) => line.trim() !== "")
    .flatMap((line) => {
      const colon = line.indexOf(": ");
      if (colon < 0) return [];
      const name = line.slice(0, colon);
      let rest = line.slice(colon + 2);
      let sizeDelta: number | null = null;
      const size = /(?:^|, )([+-]\d+(?:\.\d+)?) KiB$/.exec(rest);
      if (size) {
        sizeDelta = Math.round(Number(size[1]) * 1024);
        rest = rest.slice(0, size.index);
      }
      const arrow = rest.indexOf("→");
      const from = arrow < 0 ? [] : versions(rest.slice(0, arrow));
      const to = arrow < 0 ? [] : versions(rest.slice(arrow + 1));
      return [{ name, from, to, size_delta: sizeDelta }];
    });
}

function closureDiff(before: readonly string[], after: readonly string[], changes: VersionChange[]): ClosureDiff {
  const old = new Set(before);
  const now = new Set(after);
  return {
    added: after.filter((p) => !old.has(p)).sort(),
    removed: before.filter((p) => !now.has(p)).sort(),
    changes,
  };
}

/** A short table for a terminal. */
export function formatClosureReport(report: ClosureReport): string {
  const lines = [`closure: ${report.paths} paths, ${formatBytes(report.nar_size)}`, "largest:"];
  for (const p of report.largest) lines.push(`  ${formatBytes(p.nar_size).padStart(10)}  ${p.path}`);
  if (report.diff) {
    const d = report.diff;
    lines.push(`since ${report.previous}: ${d.added.length} paths added, ${d.removed.length} removed`);
    for (const c of d.changes) {
      const change = c.from.length + c.to.length > 0 ? `${c.from.join(", ") || "∅"} → ${c.to.join(", ") || "∅"}` : "";
      const size = c.size_delta === null ? "" : `${c.size_delta >= 0 ? "+" : ""}${formatBytes(c.size_delta)}`;
      lines.push(`  ${c.name}: ${[change, size].filter((s) => s !== "").join(", ")}`);
    }
  }
  return lines.join("\n");
}
