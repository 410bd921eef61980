// Error kinds an operator can act on. The CLI maps InputError to exit code 2
// (the input is wrong: fix it), Interrupted to 128 + the signal's number, and
// everything else to 1.

/** Bad input: names the field and the offending value. Nothing was written. */
export class InputError extends Error {
  override name = "InputError";
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
  ) {
    super(`${field}: ${describeValue(value)} ${reason}`);
  }
}

/** The environment or the files around a step are not what it needs. */
export class SetupError extends Error {
  override name = "SetupError";
}

/** A Nix command failed: carries the command line and Nix's own last words. */
export class NixError extends Error {
  override name = "NixError";
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly nixMessage: string,
    summary = "nix failed",
  ) {
    super(`${summary} (exit ${exitCode ?? "signal"}):\n  ${command}\n${indent(nixMessage)}`);
  }
}

/** The step was interrupted (a cancelled job, Ctrl-C); its commands were stopped. */
export class Interrupted extends Error {
  override name = "Interrupted";
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}: the step stopped its running command and released the config dir`);
  }
}

/** Shows a value the way it was given, quoted and cut to a readable length. */
function describeValue(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? "undefined" : JSON.stringify(value);
  } catch {
    try {
      text = String(value);
    } catch {
      text = "(a value that cannot be shown)";
    }
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}
