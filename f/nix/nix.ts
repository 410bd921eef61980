// One function per Nix operation, each returning typed values. Every call
// goes through runNix: the `nix` of $NIX_BIN (then PATH), the experimental
// features on the command line, NO_COLOR=1, and the command form chosen from
// the Nix flavour and version detected once.
import { accessSync, constants } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { DEFAULT_NIX_BIN } from "./environment.ts";
import { NixError, SetupError } from "./errors.ts";
import { ActivityType, parseLogLine } from "./nix_log.ts";
import { type BuildPlan, parsePlan } from "./plan.ts";
import { type RunOptions, type RunResult, run } from "./process.ts";
import type { BuildProgress, ProgressReporter } from "./progress.ts";

export type NixFlavour = "nix" | "lix" | "determinate";

export interface NixVersion {
  flavour: NixFlavour;
  major: number;
  minor: number;
  patch: number;
  /** What `nix --version` printed. */
  text: string;
}

export interface Nix {
  /** Absolute path of the nix binary. */
  program: string;
  version: NixVersion;
  /** Extra global arguments (settings) put on every call. */
  settings: string[];
  /** Silent environment for the child: $NIX_BIN first on PATH. */
  hiddenEnv: Record<string, string>;
}

const FEATURES = ["--extra-experimental-features", "nix-command flakes"];
const SHOWN_ENV = { NO_COLOR: "1" };

/** Parses `nix (Nix) 2.26.3`, `nix (Lix, like Nix) 2.93.0`, `nix (Determinate Nix 3.6.2) 2.29.0`. */
export function parseNixVersion(text: string): NixVersion {
  const match = /\(([^)]*)\)\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) throw new SetupError(`cannot read a Nix version from ${JSON.stringify(text.trim())}`);
  const [, name = "", major = "0", minor = "0", patch = "0"] = match;
  const flavour: NixFlavour = /lix/i.test(name) ? "lix" : /determinate/i.test(name) ? "determinate" : "nix";
  return { flavour, major: Number(major), minor: Number(minor), patch: Number(patch), text: text.trim() };
}

export function atLeast(version: NixVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}

type Env = Readonly<Record<string, string | undefined>>;

function candidates(env: Env): string[] {
  const nixBin = env.NIX_BIN || DEFAULT_NIX_BIN;
  const path = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  return [nixBin, ...path].map((dir) => join(dir, "nix"));
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const located = new Map<string, Promise<Nix>>();

/** Finds nix ($NIX_BIN first, then PATH) and detects its version, once per binary. */
export function locateNix(env: Env = process.env): Promise<Nix> {
  const searched = candidates(env);
  const program = searched.find(isExecutable);
  if (program === undefined) {
    const nixBin = env.NIX_BIN || DEFAULT_NIX_BIN;
    return Promise.reject(
      new SetupError(
        `nix was not found: looked in NIX_BIN (${nixBin}) and on PATH (${env.PATH ?? ""}). ` +
          "Install Nix (https://nixos.org/download, or `apt-get install nix-bin` on Debian), " +
          "or set NIX_BIN to the directory that holds `nix`.",
      ),
    );
  }
  const nixBin = program.slice(0, -"/nix".length);
  let found = located.get(program);
  if (!found) {
    found = (async () => {
      const hiddenEnv = { PATH: [nixBin, env.PATH ?? ""].filter((p) => p !== "").join(delimiter) };
      const result = await run([program, "--version"], { hiddenEnv, onStderrLine: () => {} });
      if (result.exitCode !== 0) {
        throw new SetupError(`${program} --version failed (exit ${result.exitCode}): ${result.stderrTail.join("\n")}`);
      }
      return { program, version: parseNixVersion(result.stdout), settings: [], hiddenEnv };
    })();
    located.set(program, found);
    found.catch(() => located.delete(program));
  }
  return found;
}

/**
 * The part of Nix's output that says what went wrong: from its first `error:`
 * on (a failed builder comes before the "dependencies failed" summary), less
 * the evaluation trace frames (`… while ...`) and the hints about
 * --show-trace, so the option or derivation at fault stays in view.
 */
export function nixErrorText(lines: readonly string[]): string {
  const first = lines.findIndex((line) => /^error\b/.test(line));
  if (first < 0) return lines.slice(-20).join("\n").trimEnd() || "(nix printed nothing)";
  const kept: string[] = [];
  let inFrame = false;
  for (const line of lines.slice(first)) {
    if (/^\s*… /.test(line)) inFrame = true;
    else if (line.trim() === "") inFrame = false;
    if (inFrame || line.trim() === "" || line.trim() === "error:") continue;
    if (/^\s*\((stack trace truncated|use '--show-trace')/.test(line)) continue;
    kept.push(line.replace(/^\s+(error:)/, "$1"));
  }
  return kept.join("\n").trimEnd();
}

export interface NixCallOptions {
  summary: string;
  onStderrLine?: RunOptions["onStderrLine"];
  /** Where Nix's words are when stderr is not plain text (internal-json). */
  errorLines?: () => readonly string[];
  /** Run the legacy `nix-store` beside `nix` instead (same settings). */
  legacy?: "nix-store";
  input?: string;
}

/** Runs `nix <args>`; throws NixError with the command and Nix's own message when it fails. */
export async function runNix(nix: Nix, args: readonly string[], options: NixCallOptions): Promise<RunResult> {
  const program = options.legacy ? join(dirname(nix.program), options.legacy) : nix.program;
  if (options.legacy && !isExecutable(program)) {
    throw new SetupError(`${program} is missing: the Nix installation at ${dirname(nix.program)} has no ${options.legacy}`);
  }
  const argv = [program, ...FEATURES, ...nix.settings, ...args];
  const runOptions: RunOptions = { env: SHOWN_ENV, hiddenEnv: nix.hiddenEnv, keepLines: 200 };
  if (options.input !== undefined) runOptions.input = options.input;
  if (options.onStderrLine) runOptions.onStderrLine = options.onStderrLine;
  const result = await run(argv, runOptions);
  if (result.exitCode !== 0) {
    const lines = options.errorLines ? options.errorLines() : result.stderrTail;
    throw new NixError(result.printed, result.exitCode, nixErrorText(lines), options.summary);
  }
  return result;
}

/** `nix flake lock <ref>`: adds missing lock entries. */
export async function flakeLock(nix: Nix, flakeRef: string): Promise<void> {
  await runNix(nix, ["flake", "lock", flakeRef], { summary: `locking ${flakeRef} failed` });
}

/** The arguments that re-lock the named inputs on this Nix (see nix-compat: 2.19 changed them). */
export function updateInputsArgs(version: NixVersion, flakeRef: string, inputs: readonly string[]): string[] {
  if (version.flavour === "lix" || atLeast(version, 2, 19)) return ["flake", "update", "--flake", flakeRef, ...inputs];
  return ["flake", "lock", flakeRef, ...inputs.flatMap((input) => ["--update-input", input])];
}

/** Re-locks the named inputs to what their sources hold now. */
export async function updateInputs(nix: Nix, flakeRef: string, inputs: readonly string[]): Promise<void> {
  if (inputs.length === 0) return;
  await runNix(nix, updateInputsArgs(nix.version, flakeRef, inputs), {
    summary: `updating ${inputs.join(", ")} in ${flakeRef} failed`,
  });
}

export interface BuildResult {
  drvPath: string;
  outputs: Record<string, string>;
}

/** Reads `nix build --json`: `[{"drvPath": ..., "outputs": {"out": ...}}]` (2.12+ adds timing keys). */
export function parseBuildJson(stdout: string): BuildResult[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new SetupError(`nix build --json printed something that is not JSON: ${stdout.slice(0, 200)}`);
  }
  if (!Array.isArray(parsed)) throw new SetupError(`nix build --json printed ${stdout.slice(0, 200)}, not a list`);
  return parsed.map((entry) => {
    const outputs = Object.fromEntries(
      Object.entries((entry?.outputs ?? {}) as Record<string, unknown>).filter(
        (pair): pair is [string, string] => typeof pair[1] === "string",
      ),
    );
    return { drvPath: String(entry?.drvPath ?? ""), outputs };
  });
}

export interface BuildOptions {
  outLink: string | null;
  /** Show progress from Nix's internal-json events instead of its own output. */
  progress?: { tracker: BuildProgress; reporter: ProgressReporter } | null;
}

/** `nix build <installable> --json`, linking the result at outLink (a GC root). */
export async function build(nix: Nix, installable: string, options: BuildOptions): Promise<BuildResult[]> {
  const link = options.outLink === null ? ["--no-link"] : ["--out-link", options.outLink];
  const progress = options.progress ?? null;
  const logFormat = progress ? ["--log-format", "internal-json", "-v"] : [];
  const callOptions: NixCallOptions = { summary: `building ${installable} failed` };
  if (progress) {
    callOptions.onStderrLine = (line) => progress.reporter.line(line);
    callOptions.errorLines = () => progress.tracker.messages;
  }
  try {
    const result = await runNix(nix, ["build", installable, "--json", ...link, ...logFormat], callOptions);
    return parseBuildJson(result.stdout);
  } finally {
    progress?.reporter.finish();
  }
}

/** `nix build --dry-run`: what a build would build and fetch, without building. */
export async function dryRun(nix: Nix, installable: string): Promise<BuildPlan> {
  const lines: string[] = [];
  await runNix(nix, ["build", installable, "--dry-run"], {
    summary: `planning ${installable} failed`,
    onStderrLine: (line) => {
      lines.push(line);
      process.stderr.write(`${line}\n`);
    },
  });
  return parsePlan(lines);
}

/** Registers `storePath` as a GC root at `link` (an indirect root, like an out-link). */
export async function addGcRoot(nix: Nix, storePath: string, link: string): Promise<void> {
  await runNix(nix, ["build", storePath, "--out-link", link], { summary: `registering ${link} as a GC root failed` });
}

/** `nix store diff-closures`: version and size changes between two closures, as text. */
export async function diffClosures(nix: Nix, before: string, after: string): Promise<string> {
  const result = await runNix(nix, ["store", "diff-closures", before, after], { summary: "comparing closures failed" });
  return result.stdout;
}

export interface PathInfo {
  path: string;
  narSize: number;
  closureSize: number | null;
  references: string[];
}

/**
 * Reads `nix path-info --json`: a list before 2.19, an object keyed by path
 * from 2.19 on (newer formats key by the path's base name: the store dir is
 * put back).
 */
export function parsePathInfoJson(stdout: string, storeDir = "/nix/store"): PathInfo[] {
  const parsed = JSON.parse(stdout) as unknown;
  const entries: [string, Record<string, unknown>][] = Array.isArray(parsed)
    ? parsed.map((e: Record<string, unknown>) => [String(e.path), e])
    : Object.entries(parsed as Record<string, Record<string, unknown> | null>).flatMap(([path, e]) => (e ? [[path, e]] : []));
  return entries.map(([path, e]) => ({
    path: path.includes("/") ? path : `${storeDir}/${path}`,
    narSize: Number(e.narSize ?? 0),
    closureSize: e.closureSize === undefined ? null : Number(e.closureSize),
    references: Array.isArray(e.references) ? e.references.map(String) : [],
  }));
}

/** `nix path-info --json [-r] [-S]` of store paths. */
export async function pathInfo(
  nix: Nix,
  paths: readonly string[],
  options: { recursive?: boolean; closureSize?: boolean; store?: string } = {},
): Promise<PathInfo[]> {
  const args = [
    "path-info",
    "--json",
    ...(options.recursive ? ["--recursive"] : []),
    ...(options.closureSize ? ["--closure-size"] : []),
    ...(options.store ? ["--store", options.store] : []),
    ...paths,
  ];
  const result = await runNix(nix, args, { summary: "reading store path info failed" });
  return parsePathInfoJson(result.stdout);
}

/** `nix-store --dump-db`: the validity registrations (hashes, references) of store paths. */
export async function dumpDb(nix: Nix, paths: readonly string[]): Promise<string> {
  const result = await runNix(nix, ["--dump-db", ...paths], {
    summary: "reading store registrations failed",
    legacy: "nix-store",
  });
  return result.stdout;
}

/** `nix-store --store <store> --load-db`: registers paths whose files are already in place. */
export async function loadDb(nix: Nix, store: string, dump: string): Promise<void> {
  await runNix(nix, ["--store", store, "--load-db"], {
    summary: `registering paths in ${store} failed`,
    legacy: "nix-store",
    input: dump,
  });
}

/**
 * `nix copy --to <store>` of store paths and their closure (locally built
 * paths carry no signatures: --no-check-sigs). Returns the paths that went,
 * from Nix's copyPath events; those the destination had are skipped.
 */
export async function copyTo(
  nix: Nix,
  to: string,
  paths: readonly string[],
  options: { substituteOnDestination?: boolean } = {},
): Promise<string[]> {
  const copied: string[] = [];
  const words: string[] = [];
  const onDestination = options.substituteOnDestination ? ["--substitute-on-destination"] : [];
  await runNix(nix, ["copy", "--no-check-sigs", "--to", to, ...onDestination, "--log-format", "internal-json", "-v", ...paths], {
    summary: `delivering the closure to ${to} failed`,
    onStderrLine: (line) => {
      const event = parseLogLine(line);
      if (event.action === "start" && event.type === ActivityType.copyPath && typeof event.fields[0] === "string") {
        copied.push(event.fields[0]);
      } else if (event.action === "text" || (event.action === "msg" && event.level <= 1)) {
        const text = event.action === "text" ? event.text : event.msg;
        words.push(...text.split("\n"));
        if (event.action === "msg" && event.level === 1) process.stderr.write(`${text}\n`);
      }
    },
    errorLines: () => words,
  });
  return copied;
}

/** The same Nix with settings (`--option name value` pairs) on every call. */
export function withSettings(nix: Nix, settings: readonly string[]): Nix {
  return { ...nix, settings: [...settings] };
}
