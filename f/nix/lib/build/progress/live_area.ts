// The bottom of a terminal as a live area: a block of lines redrawn in place,
// with text printed above it scrolling away as usual.
//
// The block sits just above the cursor, which stays at the start of the line
// below it. To redraw, the cursor goes up as many rows as the block takes and
// clears to the end of the screen. Every line is drawn shorter than the
// terminal is wide, so none wraps; when the window shrinks, terminals re-wrap
// what is on the screen (xterm, VTE, tmux, kitty do), so the rows a line
// takes are counted at the width of the moment of the redraw: nothing of an
// old block is left behind, whichever way the window changed. Widths are
// counted in columns, not characters: a CJK character or an emoji takes two.
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

/** Code points that take no column (combining marks, joiners, variation selectors). */
const ZERO_WIDTH: readonly [number, number][] = [
  [0x0300, 0x036f],
  [0x1ab0, 0x1aff],
  [0x1dc0, 0x1dff],
  [0x200b, 0x200f],
  [0x20d0, 0x20ff],
  [0xfe00, 0xfe0f],
  [0xfe20, 0xfe2f],
];
/**
 * Code points that take two columns (Unicode's East Asian Wide and
 * Fullwidth): CJK, Hangul, full-width forms, and the emoji shown as emoji by
 * default. Symbols that are emoji only with a variation selector (✔, ✓, ★)
 * take one. A count off either way misplaces a redraw after a resize, so the
 * symbols are listed one by one; the emoji planes are taken by block.
 */
const WIDE: readonly [number, number][] = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x23e9, 0x23ec],
  [0x23f0, 0x23f0],
  [0x23f3, 0x23f3],
  [0x25fd, 0x25fe],
  [0x2614, 0x2615],
  [0x2648, 0x2653],
  [0x267f, 0x267f],
  [0x2693, 0x2693],
  [0x26a1, 0x26a1],
  [0x26aa, 0x26ab],
  [0x26bd, 0x26be],
  [0x26c4, 0x26c5],
  [0x26ce, 0x26ce],
  [0x26d4, 0x26d4],
  [0x26ea, 0x26ea],
  [0x26f2, 0x26f3],
  [0x26f5, 0x26f5],
  [0x26fa, 0x26fa],
  [0x26fd, 0x26fd],
  [0x2705, 0x2705],
  [0x270a, 0x270b],
  [0x2728, 0x2728],
  [0x274c, 0x274c],
  [0x274e, 0x274e],
  [0x2753, 0x2755],
  [0x2757, 0x2757],
  [0x2795, 0x2797],
  [0x27b0, 0x27b0],
  [0x27bf, 0x27bf],
  [0x2b1b, 0x2b1c],
  [0x2b50, 0x2b50],
  [0x2b55, 0x2b55],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe30, 0xfe4f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f004, 0x1f004],
  [0x1f0cf, 0x1f0cf],
  [0x1f18e, 0x1f18e],
  [0x1f191, 0x1f19a],
  [0x1f200, 0x1f2ff],
  [0x1f300, 0x1f64f],
  [0x1f680, 0x1f6ff],
  [0x1f900, 0x1faff],
  [0x20000, 0x3fffd],
];
const within = (code: number, ranges: readonly [number, number][]) => ranges.some(([low, high]) => code >= low && code <= high);

/** Columns a character takes on a terminal. */
function charColumns(char: string): number {
  const code = char.codePointAt(0) ?? 0;
  if (within(code, ZERO_WIDTH)) return 0;
  return within(code, WIDE) ? 2 : 1;
}

/** Columns a line of plain text takes on a terminal. */
export function columnsOf(text: string): number {
  let columns = 0;
  for (const char of text) columns += charColumns(char);
  return columns;
}

/** Cuts a line of plain text to at most `width` columns, ending in an ellipsis when it was longer. */
export function fitColumns(text: string, width: number): string {
  if (columnsOf(text) <= width) return text;
  let out = "";
  let used = 0;
  for (const char of text) {
    const columns = charColumns(char);
    if (used + columns > width - 1) break;
    out += char;
    used += columns;
  }
  return `${out}…`;
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
    return this.shown.reduce((rows, line) => rows + Math.max(1, Math.ceil(columnsOf(line) / width)), 0);
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
