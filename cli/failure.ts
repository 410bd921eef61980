// How a run ends: the exit code an error carries (ToolError.exitStatus), the
// line it is told in, and a code of a run that told its own failures (a build
// of several VMs).
import { CommanderError } from "commander";
import { InputError, ToolError } from "../f/nix/lib/core/errors.ts";
import { fileSystemMessage, isFileSystemError } from "../f/nix/lib/core/files.ts";
import { standaloneEnv } from "../f/nix/lib/steps/context.ts";
import { errorStyle } from "./output.ts";

const EXIT_FAILURE = 1;
const EXIT_BAD_INPUT = 2;

/** Ends the CLI with this exit code, its messages already shown. */
export class ExitCode extends Error {
  override name = "ExitCode";
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** What an error says to the operator, and the exit code it ends a run with. */
export function failureOf(error: unknown): { code: number; message: string } {
  if (error instanceof ToolError) {
    return { code: error.exitStatus, message: `${error instanceof InputError ? "bad input: " : ""}${error.message}` };
  }
  if (isFileSystemError(error)) return { code: EXIT_FAILURE, message: fileSystemMessage(error) };
  return { code: EXIT_FAILURE, message: (error as Error)?.stack ?? String(error) };
}

/**
 * Says on stderr what ended the run and returns the exit code: an error of
 * ours carries both (its message, its exit status); a file-system error is
 * named by operation and path; anything else is a bug, shown with its stack.
 */
export function reportFailure(error: unknown, argv: readonly string[]): number {
  if (error instanceof ExitCode) return error.code;
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_BAD_INPUT; // 0: --help, --version
  const style = errorStyle(argv, standaloneEnv());
  const failure = failureOf(error);
  process.stderr.write(`${style.red(style.bold("error:"))} ${failure.message}\n`);
  return failure.code;
}
