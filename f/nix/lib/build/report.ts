// What a build produced: the size of the closure, its largest paths, and what
// changed since the previous build of the same config dir.
import { formatBytes, plural } from "../core/format.ts";
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
  /** Paths only the newer closure has, largest first. */
  added: string[];
  /** Paths only the older closure has, largest first. */
  removed: string[];
  added_size: number;
  removed_size: number;
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
  report.diff =
    previous === toplevel
      ? { added: [], removed: [], added_size: 0, removed_size: 0, changes: [] }
      : await compareClosures(nix, previous, await closureInfo(nix, [previous]), toplevel, closure);
  return report;
}

/**
 * What changed from one system to another: package versions and sizes as
 * `nix store diff-closures` reports them, and the paths added and removed,
 * largest first. The build's report and `nixos-closure diff` share it.
 */
export async function compareClosures(
  nix: Nix,
  before: string,
  beforeClosure: readonly PathInfo[],
  after: string,
  afterClosure: readonly PathInfo[],
): Promise<ClosureDiff> {
  const changes = exactDeltas(parseDiffClosures(await diffClosures(nix, before, after)), beforeClosure, afterClosure);
  const old = new Set(beforeClosure.map((i) => i.path));
  const now = new Set(afterClosure.map((i) => i.path));
  const largestFirst = (infos: readonly PathInfo[]) => [...infos].sort(largerFirst);
  const added = largestFirst(afterClosure.filter((i) => !old.has(i.path)));
  const removed = largestFirst(beforeClosure.filter((i) => !now.has(i.path)));
  const total = (infos: readonly PathInfo[]) => infos.reduce((n, i) => n + i.narSize, 0);
  return {
    added: added.map((i) => i.path),
    removed: removed.map((i) => i.path),
    added_size: total(added),
    removed_size: total(removed),
    changes,
  };
}

/** A package's versions in words: Nix's ε (no version) is none said. */
function versionWords(list: readonly string[]): string {
  return list.filter((v) => v !== "ε").join(", ");
}

/** One version change in words: `added 1.2 (12.3 KiB)`, `removed`, `1.2 → 1.3, 4.1 KiB more`. */
function changeWords(c: VersionChange): string {
  const bytes = c.size_delta === null ? null : formatBytes(Math.abs(c.size_delta));
  const amount = bytes === null ? "" : bytes;
  if (c.from.length === 0 && c.to.length > 0) {
    const version = versionWords(c.to);
    return ["added", version, amount === "" ? "" : `(${amount})`].filter((s) => s !== "").join(" ");
  }
  if (c.to.length === 0 && c.from.length > 0) {
    const version = versionWords(c.from);
    return ["removed", version, amount === "" ? "" : `(${amount})`].filter((s) => s !== "").join(" ");
  }
  const change =
    c.from.length + c.to.length > 0 ? `${versionWords(c.from) || "no version"} → ${versionWords(c.to) || "no version"}` : "";
  const size = c.size_delta === null || c.size_delta === 0 ? "" : `${amount} ${c.size_delta > 0 ? "more" : "less"}`;
  return [change, size].filter((s) => s !== "").join(", ");
}

/**
 * The diff as text: version changes with size deltas, in words, then the
 * paths added and removed, largest first. `sourceOf` names the package an
 * override's source is for (its store path is just `source`).
 */
export function formatClosureDiff(
  from: string,
  to: string,
  diff: ClosureDiff,
  shown = 10,
  sourceOf: ReadonlyMap<string, string> = new Map(),
): string[] {
  const lines = [
    `from ${from}`,
    `to   ${to}: ${plural(diff.added.length, "path")} added (${formatBytes(diff.added_size)}), ${plural(diff.removed.length, "path")} removed (${formatBytes(diff.removed_size)})`,
  ];
  // A package Nix names `source` is an override's source: named after its package when the build knows it.
  const sources = [...new Set([...diff.added, ...diff.removed].flatMap((path) => sourceOf.get(path) ?? []))];
  for (const c of diff.changes) {
    const name = c.name === "source" && sources.length > 0 ? `source of ${sources.join(", ")}` : c.name;
    lines.push(`  ${name}: ${changeWords(c)}`);
  }
  const list = (items: readonly string[]) =>
    items.slice(0, shown).join(", ") + (items.length > shown ? ` and ${items.length - shown} more` : "");
  // A name on both sides is the same package built again (new inputs, same version): said once, as rebuilt.
  const named = (path: string) => (sourceOf.has(path) ? `source of ${sourceOf.get(path)}` : storePathName(path));
  const added = diff.added.map(named);
  const removed = new Set(diff.removed.map(named));
  const rebuilt = added.filter((name) => removed.has(name));
  const onlyAdded = added.filter((name) => !rebuilt.includes(name));
  const onlyRemoved = [...removed].filter((name) => !rebuilt.includes(name));
  if (rebuilt.length > 0) lines.push(`  rebuilt: ${list(rebuilt)}`);
  if (onlyAdded.length > 0) lines.push(`  added: ${list(onlyAdded)}`);
  if (onlyRemoved.length > 0) lines.push(`  removed: ${list(onlyRemoved)}`);
  return lines;
}

/** `/nix/store/<hash>-name-1.0` -> `name-1.0` */
function storePathName(path: string): string {
  return path.replace(/^.*\/[a-z0-9]{32}-/, "");
}

/**
 * Larger first, then by path in code-unit order (store paths are ASCII; a
 * locale's collation would cost its start-up, about 6 ms, at every build).
 */
const largerFirst = (a: PathInfo, b: PathInfo): number =>
  b.narSize - a.narSize || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

function closureSummary(infos: readonly PathInfo[], largest = 10): Pick<ClosureReport, "paths" | "nar_size" | "largest"> {
  return {
    paths: infos.length,
    nar_size: infos.reduce((total, info) => total + info.narSize, 0),
    largest: [...infos]
      .sort(largerFirst)
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

const UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/**
 * Parses `nix store diff-closures` lines: `name: 1.0 → 1.1, +12.3 KiB`,
 * `name: ∅ → 2.0`, `name: -8.5 KiB`; from 2.34 a growth has no sign and a
 * unit to its size (`name: 19.1 MiB`). Nix colours them even with NO_COLOR
 * set, so terminal escapes are removed first. Sizes are Nix's, rounded.
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
      const size = /(?:^|, )([+-]?\d+(?:\.\d+)?) ([KMGTPE]iB)$/.exec(rest);
      if (size) {
        sizeDelta = Math.round(Number(size[1]) * 1024 ** (UNITS.indexOf(size[2] as string) + 1));
        rest = rest.slice(0, size.index);
      }
      const arrow = rest.indexOf("→");
      const from = arrow < 0 ? [] : versions(rest.slice(0, arrow));
      const to = arrow < 0 ? [] : versions(rest.slice(arrow + 1));
      return [{ name, from, to, size_delta: sizeDelta }];
    });
}

/**
 * The package a store path counts for in `nix store diff-closures`: its name
 * less an output's suffix (a last part of lower-case letters, `-lib32`,
 * `-lib64`), then less the version (from the first `-` not followed by a
 * letter).
 */
export function packageOf(path: string): string {
  const name = storePathName(path);
  const unsuffixed = /^(.*)-(?:[a-z]+|lib32|lib64)$/.exec(name)?.[1] ?? name;
  const version = /-[^A-Za-z]/.exec(unsuffixed);
  return version ? unsuffixed.slice(0, version.index) : unsuffixed;
}

/**
 * Nix's size changes, exact: the bytes of each package's paths in both
 * closures, where Nix shows a rounded figure (0.1 KiB before 2.34, 0.1 of a
 * larger unit since), so every Nix version gives the same figures.
 */
export function exactDeltas(
  changes: VersionChange[],
  beforeClosure: readonly PathInfo[],
  afterClosure: readonly PathInfo[],
): VersionChange[] {
  const delta = new Map<string, number>();
  const add = (infos: readonly PathInfo[], sign: number) => {
    for (const info of infos) {
      const name = packageOf(info.path);
      delta.set(name, (delta.get(name) ?? 0) + sign * info.narSize);
    }
  };
  add(afterClosure, 1);
  add(beforeClosure, -1);
  return changes.map((change) =>
    change.size_delta === null || !delta.has(change.name) ? change : { ...change, size_delta: delta.get(change.name) as number },
  );
}

/** A short table for a terminal; `sourceOf` names the package of each override's source. */
export function formatClosureReport(report: ClosureReport, sourceOf: ReadonlyMap<string, string> = new Map()): string {
  const lines = [`closure: ${plural(report.paths, "path")}, ${formatBytes(report.nar_size)}`];
  if (report.diff && report.previous) lines.push(...formatClosureDiff(report.previous, "this build", report.diff, 10, sourceOf));
  return lines.join("\n");
}

/** The largest paths of a closure, one per line: a detail for the verbose. */
export function formatLargest(report: ClosureReport): string {
  return ["largest:", ...report.largest.map((p) => `  ${formatBytes(p.nar_size).padStart(10)}  ${p.path}`)].join("\n");
}
