// The one process runner every external command goes through: an argv array
// (no shell), printed as copy-pasteable bash before it runs, stderr streamed
// line by line and its last lines kept for the error message, stopped when
// the step is interrupted, and killed by the kernel when the step dies: a
// command runs under `setpriv --pdeathsig KILL` (util-linux), so even a step
// killed with SIGKILL leaves no nix build behind to replace `result` or
// flake.lock later, outside the step's lock.
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { Interrupted, ToolError } from "./errors.ts";
import { type Logger, shellCommand } from "./log.ts";

/** An environment: variable names to values (unset ones undefined). */
export type Env = Readonly<Record<string, string | undefined>>;

/** What a command needs from the step running it. */
export interface Runner {
  /** The environment the command starts with. */
  env: Env;
  log: Logger;
  /** Aborted when the step is interrupted; the command is then stopped. */
  signal: AbortSignal;
}

export interface RunOptions {
  /** Variables shown in the printed command and added to the environment. */
  env?: Readonly<Record<string, string>>;
  /** Receives each stderr line; by default it is passed to the log. */
  onStderrLine?: (line: string) => void;
  /** How many stderr lines to keep for an error message. */
  keepLines?: number;
  /** Written to the command's stdin (else stdin is closed). */
  input?: string;
  /**
   * A file streamed to the command's stdin (binary, of any size), instead of
   * `input`: from a descriptor the caller opened and checked (the name is
   * shown, never opened again), its first `length` bytes.
   */
  inputFile?: InputFile;
}

export interface InputFile {
  /** The file's name, for the printed command. */
  path: string;
  fd: number;
  length: number;
}

export interface RunResult {
  printed: string;
  exitCode: number | null;
  stdout: string;
  stderrTail: string[];
}

/** The user this process runs as (-1 where there are no uids). */
export function runningUid(): number {
  return process.getuid?.() ?? -1;
}

/** A program could not be started (missing, not executable). */
export class SpawnError extends ToolError {
  override name = "SpawnError";
}

/** How long an interrupted command gets to stop before it is killed. */
const KILL_GRACE_MS = 5000;

/** The signal an abort stands for (the reason a step's interrupt handler gives), SIGTERM otherwise. */
export function abortSignalName(signal: AbortSignal): NodeJS.Signals {
  return signal.reason === "SIGINT" || signal.reason === "SIGTERM" ? signal.reason : "SIGTERM";
}

export function run(runner: Runner, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error("run: empty argv");
  if (runner.signal.aborted) return Promise.reject(new Interrupted(abortSignalName(runner.signal)));
  const env = options.env ?? {};
  runner.log.command(argv, env, options.inputFile?.path);
  const printed = shellCommand(argv, env, options.inputFile?.path);
  const keep = options.keepLines ?? 60;
  const onLine = options.onStderrLine ?? ((line: string) => runner.log.info(line));

  return new Promise((resolve, reject) => {
    const child = spawn("setpriv", ["--pdeathsig", "KILL", "--", program, ...args], {
      env: { ...runner.env, ...env, PATH: [runner.env.PATH, "/usr/bin", "/bin"].filter(Boolean).join(":") },
      stdio: ["pipe", "pipe", "pipe"],
    });
    // An interrupted step stops its command: a `nix build` left running would
    // replace the result link after the step was gone.
    let killer: NodeJS.Timeout | undefined;
    const stop = () => {
      child.kill(abortSignalName(runner.signal));
      // A command that ignores the signal is killed after a grace period.
      killer = setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
    };
    runner.signal.addEventListener("abort", stop, { once: true });
    child.stdin.on("error", () => {}); // a command that does not read its input
    if (options.inputFile === undefined) {
      child.stdin.end(options.input);
    } else {
      const { fd, length } = options.inputFile;
      // The file the descriptor holds, opened afresh through it (never by its name), read from 0 to what was checked.
      const file = createReadStream(`/proc/self/fd/${fd}`, { start: 0, end: length - 1 });
      file.on("error", (error) => {
        child.kill("SIGKILL");
        reject(error);
      });
      child.on("close", () => file.destroy());
      file.pipe(child.stdin);
    }
    const stdout: Buffer[] = [];
    const tail: string[] = [];
    let partial = "";
    const takeLine = (line: string) => {
      tail.push(line);
      if (tail.length > keep) tail.shift();
      onLine(line);
    };
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) takeLine(line);
    });
    child.on("error", (error: NodeJS.ErrnoException) => {
      runner.signal.removeEventListener("abort", stop);
      const why = error.code === "ENOENT" ? "setpriv was not found: install util-linux, which provides it" : error.message;
      reject(new SpawnError(`cannot run ${program}: ${why}`));
    });
    child.on("close", (exitCode) => {
      runner.signal.removeEventListener("abort", stop);
      clearTimeout(killer);
      if (partial !== "") takeLine(partial);
      if (runner.signal.aborted) {
        reject(new Interrupted(abortSignalName(runner.signal)));
        return;
      }
      resolve({
        printed,
        exitCode,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderrTail: tail,
      });
    });
  });
}
