// One function per Nix operation, each returning typed values. Every call
// goes through runNix; where Nix versions differ, the form is chosen from the
// located Nix's version.
import { NixError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { InputFile } from "../core/process.ts";
import { ActivityType, parseLogLine } from "./events.ts";
import { type BuildResult, type PathInfo, parseBuildJson, parsePathInfoJson } from "./json.ts";
import type { Nix } from "./locate.ts";
import { type NixCallOptions, runNix } from "./run.ts";
import { atLeast, type NixVersion } from "./version.ts";

/** Where a lock's stderr lines go, when not to the log (a display of its copies). */
type LockLines = NixCallOptions["onStderrLine"];

/**
 * Nix's account of what a lock changed (`warning: creating lock file ...` or
 * `updating`, then `• Added input 'x':` and its indented lines) is a detail:
 * the step says it in one line (flake_lock.ts). Whatever else Nix says, its
 * errors and other warnings, is shown (through `shown`, when given).
 */
export function lockOutput(log: Logger, shown: (line: string) => void = (line) => log.info(line)): (line: string) => void {
  let inAccount = false;
  return (line) => {
    if (/^warning: (creating|updating) lock file\b/.test(line)) inAccount = true;
    else if (inAccount && !/^(• |\s|$)/.test(line)) inAccount = false;
    if (inAccount) log.detail(line);
    else shown(line);
  };
}

/** `nix flake lock <ref>`: adds missing lock entries. */
export async function flakeLock(nix: Nix, flakeRef: string, onStderrLine?: LockLines): Promise<void> {
  await runNix(nix, ["flake", "lock", flakeRef], {
    summary: `locking ${flakeRef} failed`,
    onStderrLine: lockOutput(nix.runner.log, onStderrLine),
  });
}

/** The arguments that re-lock the named inputs: `nix flake update` took input names in 2.19 (and Lix). */
export function updateInputsArgs(version: NixVersion, flakeRef: string, inputs: readonly string[]): string[] {
  if (version.flavour === "lix" || atLeast(version, 2, 19)) return ["flake", "update", "--flake", flakeRef, ...inputs];
  return ["flake", "lock", flakeRef, ...inputs.flatMap((input) => ["--update-input", input])];
}

/** Re-locks the named inputs to what their sources hold now, and locks any input not locked yet (the others stay pinned). */
export async function updateInputs(
  nix: Nix,
  flakeRef: string,
  inputs: readonly string[],
  onStderrLine?: LockLines,
): Promise<void> {
  if (inputs.length === 0) return;
  await runNix(nix, updateInputsArgs(await nix.version(), flakeRef, inputs), {
    summary: `updating ${inputs.join(", ")} in ${flakeRef} failed`,
    onStderrLine: lockOutput(nix.runner.log, onStderrLine),
  });
}

/** How a build's stderr is read: Nix's internal-json events, line by line, and where its error text is. */
export interface EventStream {
  onLine: (line: string) => void;
  errorLines: () => readonly string[];
}

/**
 * `nix build <installable> --json --out-link <link>` (the link is a GC root);
 * with `events`, Nix reports in internal-json and every stderr line goes there
 * (builders' lines among them); without, `printBuildLogs` is Nix's own `-L`.
 */
export async function build(
  nix: Nix,
  installable: string,
  outLink: string,
  events: EventStream | null,
  printBuildLogs = false,
): Promise<BuildResult[]> {
  const args = ["build", installable, "--json", "--out-link", outLink];
  const options: NixCallOptions = { summary: `building ${installable} failed` };
  if (events) {
    args.push("--log-format", "internal-json", "-v");
    options.onStderrLine = events.onLine;
    options.errorLines = events.errorLines;
  } else if (printBuildLogs) {
    args.push("--print-build-logs");
  }
  const result = await runNix(nix, args, options);
  return parseBuildJson(result.stdout);
}

/**
 * The installable of a derivation's `out` output: `<drv>^out` from Nix 2.13
 * (and in Lix); before, a bare `.drv` path stands for its outputs.
 */
export function derivationInstallable(version: NixVersion, drv: string): string {
  return version.flavour === "lix" || atLeast(version, 2, 13) ? `${drv}^out` : drv;
}

/** `nix build --dry-run`: Nix's text of what a build would build and fetch, building nothing. */
export async function dryRun(nix: Nix, installable: string): Promise<string[]> {
  const lines: string[] = [];
  await runNix(nix, ["build", installable, "--dry-run"], {
    summary: `planning ${installable} failed`,
    onStderrLine: (line) => {
      lines.push(line);
      nix.runner.log.detail(line);
    },
  });
  return lines;
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

/**
 * `--json` for path-info, with the format asked for where the Nix has
 * `--json-format` (2.33 on; Lix, from 2.18, has not): without it those warn
 * that a future release will refuse the call.
 */
export function pathInfoJsonArgs(version: NixVersion): string[] {
  return version.flavour !== "lix" && atLeast(version, 2, 33) ? ["--json", "--json-format", "2"] : ["--json"];
}

/**
 * `nix path-info --json --recursive`: every path of the closures of `paths`,
 * with sizes. Nix's other words are a detail: a failure carries them, and
 * what a caller retries (a root's path that stopped being valid) is no news.
 */
export async function closureInfo(nix: Nix, paths: readonly string[]): Promise<PathInfo[]> {
  const result = await runNix(nix, ["path-info", ...pathInfoJsonArgs(await nix.version()), "--recursive", ...paths], {
    summary: "reading store path info failed",
    onStderrLine: (line) => nix.runner.log.detail(line),
  });
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
 * `nix-store --store <store> --import < <file>`: adds the paths of a file
 * written by `nix-store --export` to the store (the same form on every Nix
 * version), read from the descriptor the file was checked through; returns
 * the paths Nix printed.
 */
export async function importPaths(nix: Nix, store: string, file: InputFile, summary: string): Promise<string[]> {
  const result = await runNix(nix, ["--store", store, "--import"], { summary, legacy: "nix-store", inputFile: file });
  return result.stdout.split("\n").filter((line) => line !== "");
}

/**
 * `nix-store [--store <store>] --check-validity --print-invalid`: those of
 * `paths` that are not valid store paths in the store (Nix has no record of them).
 */
export async function invalidPaths(nix: Nix, paths: readonly string[], store?: string): Promise<string[]> {
  if (paths.length === 0) return [];
  const storeArgs = store === undefined ? [] : ["--store", store];
  const result = await runNix(nix, [...storeArgs, "--check-validity", "--print-invalid", ...paths], {
    summary: "checking store paths failed",
    legacy: "nix-store",
  });
  return result.stdout.split("\n").filter((line) => line !== "");
}

/**
 * `nix build -f <expression> --argstr <name> <value>... --out-link <link>`: a
 * derivation of a Nix file of ours, its arguments passed as strings (data,
 * never code); returns the output path. The out-link is a GC root.
 */
export async function buildFile(
  nix: Nix,
  expression: string,
  args: Readonly<Record<string, string>>,
  outLink: string,
): Promise<string> {
  const argstrs = Object.entries(args).flatMap(([name, value]) => ["--argstr", name, value]);
  const result = await runNix(nix, ["build", "-f", expression, ...argstrs, "--json", "--out-link", outLink], {
    summary: `building ${expression} failed`,
  });
  const out = parseBuildJson(result.stdout)[0]?.outputs.out;
  if (out === undefined)
    throw new NixError(result.printed, 0, "nix build printed no output path", `building ${expression} failed`);
  return out;
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
  substituteOnDestination: boolean,
): Promise<string[]> {
  const copied: string[] = [];
  const words: string[] = [];
  const onDestination = substituteOnDestination ? ["--substitute-on-destination"] : [];
  await runNix(nix, ["copy", "--no-check-sigs", "--to", to, ...onDestination, "--log-format", "internal-json", "-v", ...paths], {
    summary: `delivering the closure to ${to} failed`,
    onStderrLine: (line) => {
      const event = parseLogLine(line);
      if (event.action === "start" && event.type === ActivityType.copyPath && typeof event.fields[0] === "string") {
        copied.push(event.fields[0]);
      } else if (event.action === "text" || (event.action === "msg" && event.level <= 1)) {
        const text = event.action === "text" ? event.text : event.msg;
        words.push(...text.split("\n"));
        if (event.action === "msg" && event.level === 1) nix.runner.log.info(text);
      }
    },
    errorLines: () => words,
  });
  return copied;
}

/** `nix eval --raw <installable>.drvPath`: instantiates the derivation (writes .drv files), builds nothing. */
export async function derivationOf(nix: Nix, installable: string): Promise<string> {
  const result = await runNix(nix, ["eval", "--raw", `${installable}.drvPath`], {
    summary: `evaluating ${installable} failed`,
  });
  return result.stdout.trim();
}

/** `nix eval --json <installable> --apply builtins.attrNames`: the attribute names of an attribute set. */
export async function attributeNames(nix: Nix, installable: string): Promise<string[]> {
  const result = await runNix(nix, ["eval", "--json", installable, "--apply", "builtins.attrNames"], {
    summary: `listing the attributes of ${installable} failed`,
  });
  return JSON.parse(result.stdout) as string[];
}

/**
 * `nix path-info --derivation --recursive --json <installable>`: evaluates
 * the installable and lists its derivation's requisites (derivations and
 * sources) with their references, building nothing.
 */
export async function derivationClosure(nix: Nix, installable: string): Promise<PathInfo[]> {
  const json = pathInfoJsonArgs(await nix.version());
  const result = await runNix(nix, ["path-info", "--derivation", "--recursive", ...json, installable], {
    summary: `evaluating ${installable} failed`,
  });
  return parsePathInfoJson(result.stdout);
}

/** `nix flake metadata --json <ref>`: fetches a flake; the store path of its source. */
export async function flakeSource(nix: Nix, flakeRef: string): Promise<string> {
  const result = await runNix(nix, ["flake", "metadata", "--json", flakeRef], { summary: `fetching ${flakeRef} failed` });
  const path = (JSON.parse(result.stdout) as { path?: unknown }).path;
  if (typeof path !== "string")
    throw new NixError(result.printed, 0, "nix flake metadata printed no path", `fetching ${flakeRef} failed`);
  return path;
}

export interface GcRoot {
  /** The root: a link, or where a running process holds the path ({censored} for others' processes). */
  link: string;
  target: string;
}

/** `nix-store --gc --print-roots`: every GC root of the store and the path it holds. */
export async function gcRoots(nix: Nix): Promise<GcRoot[]> {
  const result = await runNix(nix, ["--gc", "--print-roots"], {
    summary: "listing the GC roots failed",
    legacy: "nix-store",
    // Nix tidies its roots as it lists them: a line per link to a removed result or per dead process's
    // temporary roots, which says nothing about the VMs.
    onStderrLine: (line) => {
      if (!/^removing stale (link from|temporary roots file) /.test(line)) nix.runner.log.info(line);
    },
  });
  return parseGcRoots(result.stdout);
}

/**
 * Reads `nix-store --gc --print-roots`: `<link> -> <store path>` per line,
 * the link quoted from 2.34 on (`"/home/a \"b\"/result" -> ...`, also
 * `"{temp:42}"`), bare before.
 */
export function parseGcRoots(stdout: string): GcRoot[] {
  return stdout.split("\n").flatMap((line) => {
    const arrow = line.lastIndexOf(" -> ");
    if (arrow < 0) return [];
    const target = line.slice(arrow + 4).trim();
    const link = line.slice(0, arrow);
    const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(link)?.[1];
    return target.startsWith("/nix/store/")
      ? [{ link: quoted === undefined ? link : quoted.replace(/\\(.)/g, "$1"), target }]
      : [];
  });
}

/**
 * The settings Nix runs with, as it resolves them (its defaults, the
 * nix.conf files it reads and their includes, NIX_CONFIG, and the step's own
 * --option arguments): name -> value. `nix config show --json` from 2.20 on
 * (`show-config` is a deprecated alias there); before, and in Lix,
 * `nix show-config --json`.
 */
export function effectiveSettings(nix: Nix): Promise<Record<string, unknown>> {
  const environment = Object.entries(nix.runner.env).filter(([name]) => /^(NIX_|XDG_CONFIG|HOME$)/.test(name));
  const key = JSON.stringify([nix.program, nix.settings, environment.sort()]);
  const known = nix.facts.settings.get(key);
  if (known) return known;
  const asked = askSettings(nix);
  nix.facts.settings.set(key, asked);
  return asked;
}

async function askSettings(nix: Nix): Promise<Record<string, unknown>> {
  const version = await nix.version();
  const command = version.flavour !== "lix" && atLeast(version, 2, 20) ? ["config", "show"] : ["show-config"];
  const result = await runNix(nix, [...command, "--json"], { summary: "reading Nix's settings failed" });
  const parsed = JSON.parse(result.stdout) as Record<string, { value?: unknown } | null>;
  return Object.fromEntries(Object.entries(parsed).map(([name, setting]) => [name, setting?.value ?? null]));
}

/** `nix-store --gc`: deletes every store path no GC root holds; returns Nix's summary line. */
export async function collectGarbage(nix: Nix): Promise<string> {
  const result = await runNix(nix, ["--gc"], { summary: "collecting garbage failed", legacy: "nix-store" });
  return [...result.stdout.split("\n"), ...result.stderrTail].filter((line) => /freed|deleted|deleting/.test(line)).join("\n");
}
