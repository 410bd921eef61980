// A real terminal for the CLI's tests: a pseudo-terminal (node-pty) whose
// output drives a terminal emulator (xterm.js, headless), so a test asserts on
// what a person would see on the screen after every redraw, resize included.
import { readFileSync } from "node:fs";
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

/**
 * What the program runs under: sh, which once the program ended prints its
 * exit status in an escape sequence no terminal shows (an OSC) and waits for a
 * line before it exits, so the pseudo-terminal stays open until everything the
 * program wrote has been read. (node-pty drops what it has not read 200 ms
 * after its child exits, which a busy machine lets happen.)
 */
const ENDED = "\x1b]7777;nixos-closure-test: exited ";
const WRAPPER = `"$@"; printf '\\033]7777;nixos-closure-test: exited %d\\007' "$?"; read -r _`;

/** The processes under `pid`, deepest first (from /proc: the program under the wrapper, and its children). */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return children.flatMap((child) => [...descendants(child), child]);
}

export function runInTerminal(
  argv: readonly string[],
  options: { env: NodeJS.ProcessEnv; columns?: number; rows?: number; cwd?: string },
): TerminalRun {
  const columns = options.columns ?? 100;
  const rows = options.rows ?? 30;
  const terminal = new xterm.Terminal({ cols: columns, rows, scrollback: 10_000, allowProposedApi: true });
  const child = pty.spawn("/bin/sh", ["-c", WRAPPER, "sh", ...argv], {
    name: options.env.TERM ?? "xterm-256color",
    cols: columns,
    rows,
    cwd: options.cwd ?? process.cwd(),
    env: options.env as Record<string, string>,
  });
  let raw = "";
  // xterm.js parses asynchronously: wait for every chunk to be drawn before reading the screen.
  let drawn: Promise<void> = Promise.resolve();
  const draw = (data: string) => {
    raw += data;
    drawn = drawn.then(() => new Promise<void>((resolve) => terminal.write(data, resolve)));
  };
  let ended: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => {
    ended = (code) => {
      ended = () => {};
      void drawn.then(() => resolve(code));
    };
  });
  // The program's output up to the wrapper's mark (held back while it may be the start of one), and nothing after it.
  let pending = "";
  let over = false;
  child.onData((data) => {
    if (over) return;
    pending += data;
    const mark = pending.indexOf(ENDED);
    if (mark === -1) {
      const lastEscape = pending.lastIndexOf("\x1b");
      const keep = lastEscape !== -1 && ENDED.startsWith(pending.slice(lastEscape)) ? lastEscape : pending.length;
      draw(pending.slice(0, keep));
      pending = pending.slice(keep);
      return;
    }
    const bell = pending.indexOf("\x07", mark);
    if (bell === -1) return;
    draw(pending.slice(0, mark));
    over = true;
    ended(Number(pending.slice(mark + ENDED.length, bell)));
    child.write("\r"); // the wrapper may go
  });
  // Killed before the program ended (no mark): what was read is all there is.
  child.onExit(({ exitCode }) => ended(exitCode));
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
      for (const pid of [...descendants(child.pid), child.pid]) {
        try {
          process.kill(pid, signal as NodeJS.Signals);
        } catch {} // gone already
      }
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
