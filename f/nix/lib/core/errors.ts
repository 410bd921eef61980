// Error kinds an operator can act on. Each carries the exit code a command
// ends with, so the CLI maps no names: 2 for bad input (fix it), 128 + the
// signal's number when interrupted, 1 for the rest. An error of no such
// kind is a bug in this tool, and shows its stack.
import { constants } from "node:os";

/** An error whose message is for the operator (shown without a stack), ending a command with `exitStatus`. */
export class ToolError extends Error {
  override name = "ToolError";
  /** What a command exits with when this error ends it: 1, the machine or Nix failed. */
  readonly exitStatus: number = 1;
}

/** Bad input: names the field and the offending value. Nothing was written. */
export class InputError extends ToolError {
  override name = "InputError";
  override readonly exitStatus: number = 2;
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
  ) {
    super(`${field}: ${describeValue(value)} ${reason}`);
  }
}

/** The environment or the files around a step are not what it needs. */
export class SetupError extends ToolError {
  override name = "SetupError";
}

/** Another step holds what this one needs (a VM's config dir, a root), and did not let go in time. */
export class Busy extends SetupError {
  override name = "Busy";
  constructor(
    /** The step holding it, as its lock names it. */
    readonly holder: string,
    message: string,
  ) {
    super(message);
  }
}

/** A Nix command failed: carries the command line and Nix's own last words. */
export class NixError extends ToolError {
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
export class Interrupted extends ToolError {
  override name = "Interrupted";
  override readonly exitStatus: number;
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}: the step stopped its running command and released the config dir`);
    this.exitStatus = 128 + constants.signals[signal];
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
