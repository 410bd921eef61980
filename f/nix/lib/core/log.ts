// Job-log output, through a Logger the context carries. Everything goes to
// stderr so that stdout stays free for a result (the CLI's --json); a
// Windmill job log shows both streams.

/** Where a step's messages go. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  /** Prints a command before it runs, as `+ <bash>`, like `set -x`. */
  command(argv: readonly string[], env?: Readonly<Record<string, string>>, stdinFile?: string): void;
  /** Prints a rendered file whole, between markers that name it. */
  file(path: string, content: string): void;
  /** Raw text, for a live display that redraws itself. */
  write(text: string): void;
  /** The terminal the text goes to (a live display redraws in place), or null for a job log or a pipe. */
  readonly terminal: { columns: number } | null;
}

/** A word that bash reads back unchanged, quoted only when needed. */
export function shellQuote(word: string): string {
  if (word !== "" && /^[A-Za-z0-9_/.,:=@%+-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A command line that can be pasted into bash as is (reading `stdinFile`, when given, on its stdin). */
export function shellCommand(argv: readonly string[], env: Readonly<Record<string, string>> = {}, stdinFile?: string): string {
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${shellQuote(value)}`);
  const redirect = stdinFile === undefined ? [] : ["<", shellQuote(stdinFile)];
  return [...assignments, ...argv.map(shellQuote), ...redirect].join(" ");
}

interface TextStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** A Logger writing to a stream (process.stderr for a step). */
export function streamLogger(stream: TextStream): Logger {
  const write = (text: string) => {
    stream.write(text);
  };
  return {
    info: (message) => write(`${message}\n`),
    warn: (message) => write(`warning: ${message}\n`),
    command: (argv, env = {}, stdinFile) => write(`+ ${shellCommand(argv, env, stdinFile)}\n`),
    file: (path, content) => {
      const body = content.endsWith("\n") ? content : `${content}\n`;
      write(`----- ${path} -----\n${body}----- end of ${path} -----\n`);
    },
    write,
    get terminal() {
      return stream.isTTY ? { columns: stream.columns ?? 120 } : null;
    },
  };
}
