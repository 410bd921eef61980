// Job-log output. Everything goes to stderr so that stdout stays free for a
// result (the CLI's --json); a Windmill job log shows both streams.

/** A word that bash reads back unchanged, quoted only when needed. */
export function shellQuote(word: string): string {
  if (word !== "" && /^[A-Za-z0-9_/.,:=@%+-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A command line that can be pasted into bash as is. */
export function shellCommand(argv: readonly string[], env: Readonly<Record<string, string>> = {}): string {
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${shellQuote(value)}`);
  return [...assignments, ...argv.map(shellQuote)].join(" ");
}

export function info(message: string): void {
  process.stderr.write(`${message}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

/** Prints a command before it runs, as `+ <bash>`, like `set -x`. */
export function command(argv: readonly string[], env: Readonly<Record<string, string>> = {}): void {
  process.stderr.write(`+ ${shellCommand(argv, env)}\n`);
}

/** Prints a rendered file whole, between markers that name it. */
export function file(path: string, content: string): void {
  const body = content.endsWith("\n") ? content : `${content}\n`;
  process.stderr.write(`----- ${path} -----\n${body}----- end of ${path} -----\n`);
}
