// The bottom of a terminal as a live area: a block of lines redrawn in place,
// with text printed above it scrolling away as usual.
//
// The block sits just above the cursor, which stays at the start of the line
// below it. To redraw, the cursor goes up as many rows as the block takes and
// clears to the end of the screen. Every line is drawn shorter than the
// terminal is wide, so none wraps; when the window shrinks, terminals re-wrap
// what is on the screen (xterm, VTE, tmux, kitty do), so the rows a line
// takes are counted at the width of the moment of the redraw: nothing of an
// old block is left behind, whichever way the window changed.
import type { Logger, Terminal } from "../../core/log.ts";

export interface BlockLine {
  /** The text as it takes columns: no escapes. */
  plain: string;
  /** The same with colour. */
  styled: string;
}

// Escape sequences (CSI, OSC, two-byte), then the other control characters but tab.
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f\x9b]/g;

/**
 * A builder's line as one row of plain text: what it would show last on a
 * terminal (after its last carriage return), without escapes or control
 * characters, tabs as spaces. A builder's colours or cursor moves must never
 * reach the operator's terminal.
 */
export function printable(line: string): string {
  const text = line.replace(/[\r\n]+$/, "");
  const afterReturn = text.slice(text.lastIndexOf("\r") + 1);
  return afterReturn.replace(ESCAPES, "").replace(/\t/g, "  ").replace(CONTROLS, "");
}

export class LiveArea {
  private shown: readonly string[] = [];

  constructor(
    private readonly log: Logger,
    private readonly terminal: Terminal,
  ) {}

  /** Rows the shown block takes now, at the terminal's present width. */
  private rows(): number {
    const width = Math.max(1, this.terminal.columns);
    return this.shown.reduce((rows, line) => rows + Math.max(1, Math.ceil([...line].length / width)), 0);
  }

  /** Replaces the block with `block`, printing `above` (lines of text) first; one write, so it never flickers. */
  draw(block: readonly BlockLine[], above: readonly string[] = []): void {
    const rows = this.rows();
    let out = rows > 0 ? `\x1b[${rows}A\r\x1b[J` : "";
    for (const text of above) out += `${text}\n`;
    for (const line of block) out += `${line.styled}\n`;
    this.shown = block.map((line) => line.plain);
    if (out !== "") this.log.write(out);
  }
}
