// Runs one Nix command: the located nix (or a legacy binary beside it), the
// experimental features on the command line, the step's settings, NO_COLOR;
// a failure becomes a NixError with the command and Nix's own words.
import { dirname, join } from "node:path";
import { NixError, SetupError } from "../core/errors.ts";
import { type InputFile, type RunOptions, type RunResult, run } from "../core/process.ts";
import { parseLogLine, stripAnsi } from "./events.ts";
import { isExecutable, type Nix } from "./locate.ts";

const FEATURES = ["--extra-experimental-features", "nix-command flakes"];
const SHOWN_ENV = { NO_COLOR: "1" };

/**
 * The part of Nix's output that says what went wrong: from its first `error:`
 * on (a failed builder comes before the "dependencies failed" summary), less
 * the evaluation trace frames (`… while ...`) and the hints about
 * --show-trace (unless `keepTrace`: the caller asked for them), so the option
 * or derivation at fault stays in view.
 */
export function nixErrorText(lines: readonly string[], keepTrace = false): string {
  const first = lines.findIndex((line) => /^error\b/.test(line));
  if (first < 0) return lines.slice(-20).join("\n").trimEnd() || "(nix printed nothing)";
  const kept: string[] = [];
  let inFrame = false;
  for (const line of lines.slice(first)) {
    if (/^\s*… /.test(line) && !keepTrace) inFrame = true;
    else if (line.trim() === "") inFrame = false;
    if (inFrame || line.trim() === "" || line.trim() === "error:") continue;
    if (/^\s*\((stack trace truncated|use '--show-trace')/.test(line)) continue;
    kept.push(line.replace(/^\s+(error:)/, "$1"));
  }
  return kept.join("\n").trimEnd();
}

/**
 * Nix telling whoever wrote a command that a form of it will go (`'--json'
 * without '--json-format' is deprecated`): news for this code, never for the
 * user. A plain line or an internal-json message.
 */
export function isDeprecationNotice(line: string): boolean {
  if (!line.includes("deprecated")) return false;
  const event = parseLogLine(line);
  const text = event.action === "text" ? event.text : event.action === "msg" ? event.msg : "";
  return /^warning: .*\bdeprecated\b/.test(stripAnsi(text));
}

export interface NixCallOptions {
  /** What failed, for the error's first line. */
  summary: string;
  onStderrLine?: RunOptions["onStderrLine"];
  /** Where Nix's words are when stderr is not plain text (internal-json). */
  errorLines?: () => readonly string[];
  /** Run the legacy `nix-store` beside `nix` instead (same settings). */
  legacy?: "nix-store";
  input?: string;
  /** A file Nix reads on its stdin, from a descriptor the caller checked. */
  inputFile?: InputFile;
}

/** Runs `nix <args>`; throws NixError with the command and Nix's own message when it fails. */
export async function runNix(nix: Nix, args: readonly string[], options: NixCallOptions): Promise<RunResult> {
  const program = options.legacy ? join(dirname(nix.program), options.legacy) : nix.program;
  if (options.legacy && !isExecutable(program)) {
    throw new SetupError(`${program} is missing: the Nix installation at ${dirname(nix.program)} has no ${options.legacy}`);
  }
  const runOptions: RunOptions = { env: SHOWN_ENV, keepLines: 200 };
  if (options.input !== undefined) runOptions.input = options.input;
  if (options.inputFile !== undefined) runOptions.inputFile = options.inputFile;
  // Nix's error, from its first `error:` line on, is the NixError's text: shown as it comes too, it would show twice.
  let held: string[] | null = null;
  const onLine =
    options.onStderrLine ??
    ((line: string) => {
      if (held === null && /^error\b/.test(line)) held = [];
      if (held === null) nix.runner.log.info(line);
      else held.push(line);
    });
  runOptions.onStderrLine = (line) => {
    if (!isDeprecationNotice(line)) onLine(line);
  };
  const result = await run(nix.runner, [program, ...FEATURES, ...nix.settings, ...args], runOptions);
  if (result.exitCode === 0) for (const line of held ?? []) nix.runner.log.info(line);
  if (result.exitCode !== 0) {
    const lines = options.errorLines ? options.errorLines() : result.stderrTail.filter((line) => !isDeprecationNotice(line));
    throw new NixError(
      result.printed,
      result.exitCode,
      nixErrorText(lines, nix.settings.includes("--show-trace")),
      options.summary,
    );
  }
  return result;
}
