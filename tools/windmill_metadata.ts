// Windmill metadata of the workspace scripts under f/: for each `.ts`, the
// `.script.yaml` (summary, description, the input schema Windmill's own parser
// infers from `main`'s signature) and a `.script.lock` that declares no
// dependencies. `npm run windmill:metadata` writes them; the test suite checks
// that what is committed matches what the parser infers today.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { initSync, parse_deno } from "windmill-parser-wasm-ts";
import { stringify } from "yaml";

export const ROOT = join(import.meta.dirname, "..");
/** A lock with no npm dependencies: the worker skips the install. */
export const EMPTY_LOCK = '{"dependencies": {}}\n//bun.lock\n<empty>';

let parserReady = false;
function parser(): typeof parse_deno {
  if (!parserReady) {
    const require = createRequire(import.meta.url);
    initSync({ module: readFileSync(require.resolve("windmill-parser-wasm-ts/windmill_parser_wasm_bg.wasm")) });
    parserReady = true;
  }
  return parse_deno;
}

/** A type as Windmill's parser reports it. */
export type ParsedType =
  | "bool"
  | "int"
  | "float"
  | { str: string[] | null }
  | { list: ParsedType }
  | { object: { name: string | null; props: { key: string; typ: ParsedType }[] } }
  | { resource: string };

export interface ParsedArg {
  name: string;
  typ: ParsedType;
  default: unknown;
  has_default: boolean;
}

/** What Windmill's parser infers from a script's `main`. */
export function parseSignature(code: string): ParsedArg[] {
  return (JSON.parse(parser()(code)) as { args: ParsedArg[] }).args;
}

export type JsonSchema = Record<string, unknown>;

/** The JSON Schema of one parsed type, the way Windmill's form reads it. */
export function schemaOfType(typ: ParsedType): JsonSchema {
  if (typ === "bool") return { type: "boolean" };
  if (typ === "int") return { type: "integer" };
  if (typ === "float") return { type: "number" };
  if ("str" in typ) return typ.str ? { type: "string", enum: typ.str } : { type: "string" };
  if ("list" in typ) return { type: "array", items: schemaOfType(typ.list) };
  if ("object" in typ) {
    const props = typ.object.props;
    return props.length === 0
      ? { type: "object" }
      : { type: "object", properties: Object.fromEntries(props.map((p) => [p.key, schemaOfType(p.typ)])) };
  }
  throw new Error(`unsupported parameter type ${JSON.stringify(typ)}: resources are not used here`);
}

/** The leading comment of a file (`/** ... *\/` or `//` lines), as plain text. */
function leadingComment(code: string): string {
  const block = /^\s*\/\*\*?([\s\S]*?)\*\//.exec(code);
  if (block) {
    return (block[1] as string)
      .split("\n")
      .map((line) => line.replace(/^\s*\* ?/, ""))
      .join("\n")
      .trim();
  }
  const lines: string[] = [];
  for (const line of code.split("\n")) {
    const m = /^\s*\/\/ ?(.*)$/.exec(line);
    if (!m) break;
    lines.push(m[1] as string);
  }
  return lines.join("\n").trim();
}

/** `@param name text` tags of a doc comment (continuation lines joined). */
function paramDescriptions(comment: string): Record<string, string> {
  const result: Record<string, string> = {};
  let current: string | null = null;
  for (const line of comment.split("\n")) {
    const tag = /^@param\s+(\w+)\s+(.*)$/.exec(line.trim());
    if (tag) {
      current = tag[1] as string;
      result[current] = tag[2] as string;
    } else if (current && line.trim() !== "" && !line.trim().startsWith("@")) {
      result[current] = `${result[current]} ${line.trim()}`;
    } else {
      current = null;
    }
  }
  return result;
}

export interface ScriptMetadata {
  path: string;
  yaml: string;
  lock: string;
}

/** The metadata files of one workspace script, from its source. */
export function metadataFor(file: string): ScriptMetadata {
  const code = readFileSync(file, "utf8");
  const windmillPath = relative(ROOT, file).replace(/\.ts$/, "");
  const comment = leadingComment(code);
  const name = windmillPath.split("/").at(-1) as string;
  // Summary: the first sentence of the first paragraph; description: the rest, up to the @param tags.
  const lines = comment.split("\n");
  const firstTag = lines.findIndex((line) => line.trim().startsWith("@"));
  const prose = (firstTag < 0 ? lines : lines.slice(0, firstTag)).join("\n").trim();
  const [firstParagraph = "", ...paragraphs] = prose.split(/\n\s*\n/);
  const flat = firstParagraph.replace(/\s*\n\s*/g, " ");
  const sentenceEnd = flat.search(/[.:](\s|$)/);
  const firstSentence = sentenceEnd < 0 ? flat : flat.slice(0, sentenceEnd);
  const summary =
    (firstSentence === name ? flat.slice(sentenceEnd + 1) : firstSentence).trim().replace(/\.$/, "") || windmillPath;
  const restOfFirst = firstSentence === name ? "" : flat.slice(firstSentence.length + 1).trim();
  const description = [restOfFirst, ...paragraphs]
    .filter((p) => p !== "")
    .join("\n\n")
    .trim();
  const described = paramDescriptions(comment);
  const args = /export\s+(async\s+)?function\s+main\s*\(/.test(code) ? parseSignature(code) : [];
  const properties = Object.fromEntries(
    args.map((arg) => {
      const schema: JsonSchema = { ...schemaOfType(arg.typ), description: described[arg.name] ?? "" };
      if (arg.has_default && arg.default !== null) schema.default = arg.default;
      return [arg.name, schema];
    }),
  );
  const schema = {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    order: args.map((a) => a.name),
    properties,
    required: args.filter((a) => !a.has_default).map((a) => a.name),
  };
  const yaml = stringify(
    {
      summary,
      description:
        args.length === 0 ? `${description}\n\nLibrary module imported by the f/nix steps (no main).`.trim() : description,
      lock: `!inline ${windmillPath}.script.lock`,
      kind: "script",
      schema,
    },
    { blockQuote: "literal", lineWidth: 0 },
  );
  return { path: windmillPath, yaml, lock: EMPTY_LOCK };
}

/** Every workspace script under f/. */
export function workspaceScripts(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && !entry.name.endsWith(".flow")) walk(path);
      else if (entry.isFile() && entry.name.endsWith(".ts")) found.push(path);
    }
  };
  walk(join(ROOT, "f"));
  return found.sort();
}

const WMILL = join(ROOT, "node_modules", ".bin", "wmill");

/**
 * `wmill-lock.yaml` as `wmill generate-metadata rehash` writes it from the
 * files on disk (the hashes `wmill sync push` compares), made in a copy of
 * the workspace so that nothing here changes.
 */
export function currentWmillLock(): string {
  const copy = mkdtempSync(join(tmpdir(), "wmill-lock-"));
  try {
    cpSync(join(ROOT, "f"), join(copy, "f"), { recursive: true });
    cpSync(join(ROOT, "wmill.yaml"), join(copy, "wmill.yaml"));
    execFileSync(WMILL, ["generate-metadata", "rehash"], { cwd: copy, stdio: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    return readFileSync(join(copy, "wmill-lock.yaml"), "utf8");
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}
