// The only way user text enters a Nix file: as a double-quoted Nix string
// that Nix reads back byte for byte.

const NIX_KEYWORDS: ReadonlySet<string> = new Set(["assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"]);

/**
 * A double-quoted Nix string literal for `text`. `\`, `"` and every `$` are
 * escaped (so `${` never starts an interpolation), and newline, carriage
 * return and tab use their escapes. Other control characters need no escape:
 * Nix keeps them as they are (it has no `\xNN` form). NUL cannot be in a Nix
 * string at all; validation rejects it before rendering.
 */
export function nixString(text: string): string {
  if (text.includes("\0")) throw new Error("a Nix string cannot hold a NUL character");
  let out = '"';
  for (const ch of text) {
    switch (ch) {
      case "\\":
        out += "\\\\";
        break;
      case '"':
        out += '\\"';
        break;
      case "$":
        out += "\\$";
        break;
      case "\n":
        out += "\\n";
        break;
      case "\r":
        out += "\\r";
        break;
      case "\t":
        out += "\\t";
        break;
      default:
        out += ch;
    }
  }
  return `${out}"`;
}

/** True for names Nix accepts bare as an attribute or identifier. */
export function isNixIdentifier(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_'-]*$/.test(name) && !NIX_KEYWORDS.has(name);
}

/** An attribute name: bare when Nix allows it, else a quoted string. */
export function nixAttrName(name: string): string {
  return isNixIdentifier(name) ? name : nixString(name);
}

/** A Nix list of strings on one line: `[ "a" "b" ]`. */
export function nixStringList(items: readonly string[]): string {
  return items.length === 0 ? "[ ]" : `[ ${items.map(nixString).join(" ")} ]`;
}
