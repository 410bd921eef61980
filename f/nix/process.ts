// The one process runner every external command goes through: an argv array
// (no shell), printed as copy-pasteable bash before it runs, stderr streamed
// live and its last lines kept for the error message.
import { spawn } from "node:child_process";
import * as log from "./log.ts";

export interface RunOptions {
  /** Variables shown in the printed command and added to the environment. */
  env?: Readonly<Record<string, string>>;
  /** Variables added silently (PATH adjustments, test settings). */
  hiddenEnv?: Readonly<Record<string, string>>;
  cwd?: string;
  /** Receives each stderr line; by default it is echoed to our stderr. */
  onStderrLine?: (line: string) => void;
  /** How many stderr lines to keep for an error message. */
  keepLines?: number;
  /** Written to the command's stdin (else stdin is closed). */
  input?: string | Buffer;
}

export interface RunResult {
  argv: readonly string[];
  printed: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderrTail: string[];
  elapsedMs: number;
}

export class SpawnError extends Error {
  override name = "SpawnError";
  constructor(
    readonly program: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

const running = new Set<ReturnType<typeof spawn>>();
let forwarding = false;

/**
 * When the step is interrupted (a cancelled job, Ctrl-C), its commands stop
 * with it: a `nix build` left running would replace the result link after
 * the step was gone. The signal is passed on, then the step exits as killed.
 */
function forwardSignals(): void {
  if (forwarding) return;
  forwarding = true;
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.on(signal, () => {
      for (const child of running) child.kill(signal);
      process.exit(code);
    });
  }
}

export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error("run: empty argv");
  const env = options.env ?? {};
  log.command(argv, env);
  const printed = log.shellCommand(argv, env);
  const keep = options.keepLines ?? 60;
  const onLine = options.onStderrLine ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = performance.now();

  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.hiddenEnv, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    forwardSignals();
    running.add(child);
    child.stdin.on("error", () => {}); // a command that does not read its input
    child.stdin.end(options.input);
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
      running.delete(child);
      reject(new SpawnError(program, error.code, `cannot run ${program}: ${error.message}`));
    });
    child.on("close", (exitCode, signal) => {
      running.delete(child);
      if (partial !== "") takeLine(partial);
      resolve({
        argv,
        printed,
        exitCode,
        signal,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderrTail: tail,
        elapsedMs: performance.now() - started,
      });
    });
  });
}
