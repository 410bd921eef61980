// A real terminal for the CLI's tests: a pseudo-terminal (node-pty) whose
// output drives a terminal emulator (xterm.js, headless), so a test asserts on
// what a person would see on the screen after every redraw, resize included.
import xterm from "@xterm/headless";
import pty from "node-pty";

export interface TerminalRun {
  /** Everything the program wrote, escapes included. */
  readonly raw: string;
  /** The lines written, on the screen and in its scrollback: a line wrapped over several rows is one; trailing blanks dropped. */
  screen(): string[];
  /** The rows of the screen and its scrollback, as they are shown; trailing blanks dropped. */
  rows(): string[];
  /** The visible rows only. */
  visible(): string[];
  resize(columns: number, rows: number): Promise<void>;
  /** Types into the terminal, as a person at the keyboard. */
  type(keys: string): void;
  /** Resolves with the exit code once the program ended and its output was drawn. */
  readonly exited: Promise<number>;
  kill(signal?: string): void;
}

export function runInTerminal(
  argv: readonly string[],
  options: { env: NodeJS.ProcessEnv; columns?: number; rows?: number; cwd?: string },
): TerminalRun {
  const columns = options.columns ?? 100;
  const rows = options.rows ?? 30;
  const terminal = new xterm.Terminal({ cols: columns, rows, scrollback: 10_000, allowProposedApi: true });
  const [program = "", ...args] = argv;
  const child = pty.spawn(program, args, {
    name: options.env.TERM ?? "xterm-256color",
    cols: columns,
    rows,
    cwd: options.cwd ?? process.cwd(),
    env: options.env as Record<string, string>,
  });
  let raw = "";
  // xterm.js parses asynchronously: wait for every chunk to be drawn before reading the screen.
  let drawn: Promise<void> = Promise.resolve();
  child.onData((data) => {
    raw += data;
    drawn = drawn.then(() => new Promise<void>((resolve) => terminal.write(data, resolve)));
  });
  const exited = new Promise<number>((resolve) => {
    child.onExit(({ exitCode }) => {
      // The last chunks may arrive just after the exit event.
      setTimeout(() => void drawn.then(() => resolve(exitCode)), 100);
    });
  });
  const lines = (from: number, to: number, joinWrapped = false) => {
    const buffer = terminal.buffer.active;
    const out: string[] = [];
    for (let i = from; i < to; i++) {
      const line = buffer.getLine(i);
      const text = line?.translateToString(true) ?? "";
      if (joinWrapped && line?.isWrapped && out.length > 0) out[out.length - 1] += text;
      else out.push(text);
    }
    return out;
  };
  const trimmed = (all: string[]) => {
    while (all.length > 0 && all[all.length - 1] === "") all.pop();
    return all;
  };
  return {
    get raw() {
      return raw;
    },
    screen() {
      return trimmed(lines(0, terminal.buffer.active.length, true));
    },
    rows() {
      return trimmed(lines(0, terminal.buffer.active.length));
    },
    visible() {
      const start = terminal.buffer.active.viewportY;
      return lines(start, start + terminal.rows);
    },
    async resize(newColumns, newRows) {
      await drawn;
      terminal.resize(newColumns, newRows);
      child.resize(newColumns, newRows);
    },
    type(keys) {
      child.write(keys);
    },
    exited,
    kill(signal = "SIGTERM") {
      child.kill(signal);
    },
  };
}

/** A terminal emulator alone, for output a test makes in process. */
export interface Screen {
  write(text: string): void;
  resize(columns: number, rows: number): Promise<void>;
  /** The screen and scrollback, trailing blank lines dropped, once everything written is drawn. */
  lines(): Promise<string[]>;
}

export function emulator(columns: number, rows: number): Screen {
  // A newline moves to the start of the next line, as a terminal's line discipline makes it do.
  const terminal = new xterm.Terminal({ cols: columns, rows, scrollback: 10_000, allowProposedApi: true, convertEol: true });
  let drawn: Promise<void> = Promise.resolve();
  return {
    write(text) {
      drawn = drawn.then(() => new Promise<void>((resolve) => terminal.write(text, resolve)));
    },
    async resize(newColumns, newRows) {
      await drawn;
      terminal.resize(newColumns, newRows);
    },
    async lines() {
      await drawn;
      const buffer = terminal.buffer.active;
      const out: string[] = [];
      for (let i = 0; i < buffer.length; i++) out.push(buffer.getLine(i)?.translateToString(true) ?? "");
      while (out.length > 0 && out[out.length - 1] === "") out.pop();
      return out;
    },
  };
}
