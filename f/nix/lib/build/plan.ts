// What a build will do, as Nix reports it: `nix build --dry-run` (and, from
// Nix 2.19 on, the same lines at the start of a real build).
import { formatBytes, plural } from "../core/format.ts";

export interface BuildPlan {
  /** Derivations Nix will build, by store path. */
  derivations: string[];
  /** Store paths Nix will fetch from a binary cache. */
  fetch: string[];
  download_bytes: number | null;
  unpacked_bytes: number | null;
}

const DERIVATIONS_HEADER = /^(?:these (\d+) derivations|this derivation) will be built:$/;
const FETCH_HEADER =
  /^(?:these (\d+) paths|this path) will be fetched(?: \(([\d.]+) (\w+) download, ([\d.]+) (\w+) unpacked\))?:$/;

const UNITS: Record<string, number> = { B: 1, bytes: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

function bytes(amount: string | undefined, unit: string | undefined): number | null {
  if (amount === undefined || unit === undefined || !(unit in UNITS)) return null;
  return Math.round(Number(amount) * (UNITS[unit] as number));
}

/** Reads the plan from Nix's text (dry-run stderr, or plan messages of a build). */
export function parsePlan(lines: readonly string[]): BuildPlan {
  const plan: BuildPlan = { derivations: [], fetch: [], download_bytes: null, unpacked_bytes: null };
  let section: "derivations" | "fetch" | null = null;
  for (const line of lines) {
    const fetch = FETCH_HEADER.exec(line);
    if (DERIVATIONS_HEADER.test(line)) section = "derivations";
    else if (fetch) {
      section = "fetch";
      plan.download_bytes = bytes(fetch[2], fetch[3]);
      plan.unpacked_bytes = bytes(fetch[4], fetch[5]);
    } else if (section && /^\s+\/nix\/store\/\S+$/.test(line)) plan[section].push(line.trim());
    else section = null;
  }
  return plan;
}

/** `/nix/store/<hash>-name-1.0.drv` -> `name-1.0` */
export function drvName(path: string): string {
  return path.replace(/^.*\/[a-z0-9]{32}-/, "").replace(/\.drv$/, "");
}

function names(paths: readonly string[], shown = 10): string {
  const list = paths.map(drvName);
  return list.length > shown ? `${list.slice(0, shown).join(", ")} and ${list.length - shown} more` : list.join(", ");
}

/** One or two lines for the log: what will be built and fetched. */
export function formatPlan(plan: BuildPlan): string {
  const build =
    plan.derivations.length === 0
      ? "nothing to build"
      : `${plural(plan.derivations.length, "derivation")} to build: ${names(plan.derivations)}`;
  if (plan.fetch.length === 0) return `plan: ${build}; nothing to fetch`;
  const sizes =
    plan.download_bytes === null
      ? ""
      : ` (${formatBytes(plan.download_bytes)} download, ${formatBytes(plan.unpacked_bytes ?? 0)} unpacked)`;
  return `plan: ${build}\nplan: ${plural(plan.fetch.length, "path")} to fetch${sizes}: ${names(plan.fetch)}`;
}

/** Collects the plan from the info-level lines a build prints as it starts (Nix 2.19+). */
export class PlanCollector {
  private readonly lines: string[] = [];
  private parsed: BuildPlan | null = null;
  /** A plan header was seen and the plan not yet shown. */
  pending = false;

  /** Whether a message is (part of) the plan listing. */
  static isPlanText(text: string): boolean {
    return text.split("\n").every((l) => DERIVATIONS_HEADER.test(l) || FETCH_HEADER.test(l) || /^\s+\/nix\/store\//.test(l));
  }

  /** Takes one info-level line; true when it starts a plan section. */
  take(line: string): boolean {
    this.lines.push(line);
    this.parsed = null;
    const header = DERIVATIONS_HEADER.test(line) || FETCH_HEADER.test(line);
    if (header) this.pending = true;
    return header;
  }

  get plan(): BuildPlan {
    this.parsed ??= parsePlan(this.lines);
    return this.parsed;
  }
}
