// Job-log output, through a Logger the context carries. Everything goes to
// stderr so that stdout stays free for a result (the CLI's --json); a
// Windmill job log shows both streams.

/**
 * How much a person wants to read. `verbose` is the kdevops convention of a
 * job log (every command and every rendered file); `normal` is a terminal's
 * default (commands, progress, what was done); `quiet` shows nothing: the
 * caller prints the result and errors.
 */
export type Verbosity = "quiet" | "normal" | "verbose";

/** A terminal the text goes to: a live display may redraw in place. */
export interface Terminal {
  readonly columns: number;
  readonly rows: number;
  /** Calls `listener` when the window changes size; returns the unsubscribe. */
  onResize(listener: () => void): () => void;
}

/** Our own text in colour, or plain: every function is the identity when colour is off. */
export interface Style {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
}

const sgr = (open: number, close: number) => (text: string) => (text === "" ? "" : `\x1b[${open}m${text}\x1b[${close}m`);

export function createStyle(enabled: boolean): Style {
  const plain = (text: string) => text;
  return {
    bold: enabled ? sgr(1, 22) : plain,
    dim: enabled ? sgr(2, 22) : plain,
    red: enabled ? sgr(31, 39) : plain,
    green: enabled ? sgr(32, 39) : plain,
    yellow: enabled ? sgr(33, 39) : plain,
  };
}

/** Where a step's messages go. */
export interface Logger {
  /** What was done, for every reader but a quiet one. */
  info(message: string): void;
  /** Details a newcomer can skip (the Nix used, the largest paths, Nix's own chatter): verbose only. */
  detail(message: string): void;
  warn(message: string): void;
  /** Prints a command before it runs, as `+ <bash>`, like `set -x`. */
  command(argv: readonly string[], env?: Readonly<Record<string, string>>, stdinFile?: string): void;
  /** Prints a rendered file whole, between markers that name it: verbose only. */
  file(path: string, content: string): void;
  /** Raw text, for a live display that redraws itself. */
  write(text: string): void;
  readonly verbosity: Verbosity;
  /** The terminal the text goes to, or null for a job log, a pipe or `TERM=dumb` (then no escapes at all). */
  readonly terminal: Terminal | null;
  readonly style: Style;
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

export interface TextStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
  on?(event: "resize", listener: () => void): unknown;
  off?(event: "resize", listener: () => void): unknown;
}

export interface StreamLoggerOptions {
  /** Default `verbose`: a job log's convention. */
  verbosity?: Verbosity;
  /** Whether a terminal may be drawn on (false for `TERM=dumb`); default: when the stream is one. */
  terminal?: boolean;
  color?: boolean;
}

/** Store paths a command shows at the normal level before its trailing list is cut. */
const SHOWN_STORE_PATHS = 4;

/**
 * A command as `shellCommand` prints it, but a long trailing list of store
 * paths (a whole closure given to Nix: thousands of paths on a real system)
 * cut to its first few; -v, and a job log, print it whole.
 */
export function shortCommand(argv: readonly string[], env: Readonly<Record<string, string>> = {}, stdinFile?: string): string {
  let start = argv.length;
  while (start > 0 && argv[start - 1]?.startsWith("/nix/store/")) start--;
  const paths = argv.length - start;
  if (paths <= SHOWN_STORE_PATHS + 1 || stdinFile !== undefined) return shellCommand(argv, env, stdinFile);
  const shown = shellCommand(argv.slice(0, start + SHOWN_STORE_PATHS), env);
  return `${shown} ... (and ${paths - SHOWN_STORE_PATHS} more store paths: -v prints the whole command)`;
}

/** A Logger writing to a stream (process.stderr for a step). */
export function streamLogger(stream: TextStream, options: StreamLoggerOptions = {}): Logger {
  const verbosity = options.verbosity ?? "verbose";
  const style = createStyle(options.color ?? false);
  const write = (text: string) => {
    stream.write(text);
  };
  const atLeast = (level: Verbosity) =>
    level === "quiet" || verbosity === "verbose" || (level === "normal" && verbosity === "normal");
  const terminal: Terminal | null =
    (options.terminal ?? true) && stream.isTTY
      ? {
          get columns() {
            return stream.columns || 80;
          },
          get rows() {
            return stream.rows || 24;
          },
          onResize(listener) {
            stream.on?.("resize", listener);
            return () => stream.off?.("resize", listener);
          },
        }
      : null;
  return {
    info: (message) => atLeast("normal") && write(`${message}\n`),
    detail: (message) => atLeast("verbose") && write(`${message}\n`),
    warn: (message) => atLeast("normal") && write(`${style.yellow(style.bold("warning:"))} ${message}\n`),
    command: (argv, env = {}, stdinFile) =>
      atLeast("normal") &&
      write(
        `${style.dim(`+ ${verbosity === "verbose" ? shellCommand(argv, env, stdinFile) : shortCommand(argv, env, stdinFile)}`)}\n`,
      ),
    file: (path, content) => {
      if (!atLeast("verbose")) return;
      const body = content.endsWith("\n") ? content : `${content}\n`;
      write(`----- ${path} -----\n${body}----- end of ${path} -----\n`);
    },
    write,
    verbosity,
    terminal,
    style,
  };
}
