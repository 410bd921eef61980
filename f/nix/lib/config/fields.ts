// Reading fields of an input as a web form or JSON gives them: blank rows
// dropped, null lists meaning the default, and an InputError that names the
// field and the value for anything else that is wrong.
import { InputError } from "../core/errors.ts";
import { didYouMean } from "../core/suggest.ts";

/** No input of the flow nests deeper than this; anything deeper is refused before it is walked. */
const MAX_DEPTH = 16;

/** Refuses a value nested deeper than any input of the flow is (a walk of it would exhaust the stack). */
export function checkDepth(field: string, value: unknown): void {
  const pending: [unknown, number][] = [[value, 0]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop() as [unknown, number];
    if (typeof item !== "object" || item === null) continue;
    if (depth > MAX_DEPTH) throw new InputError(field, "(nested too deeply to show)", `nests deeper than ${MAX_DEPTH} levels`);
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
}

/** Refuses a key that is not one of `known`, naming it and the closest known one: a misspelt field is never dropped silently. */
export function checkKeys(field: string, value: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new InputError(field, key, `is not a field of ${what} (${known.join(", ")})${didYouMean(key, known)}`);
    }
  }
}

/** A boolean field: true, false, or absent (then `fallback`); a string such as "false" is refused. */
export function expectBoolean(field: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") throw new InputError(field, value, "must be true or false (a boolean, not a string)");
  return value;
}

export function isBlank(value: unknown): boolean {
  return value === null || value === undefined || (typeof value === "string" && value.trim() === "");
}

export function isEmptyRow(value: unknown): boolean {
  if (isBlank(value)) return true;
  if (typeof value !== "object" || Array.isArray(value)) return false;
  return Object.values(value as object).every(
    (v) => isBlank(v) || (Array.isArray(v) && v.length === 0) || (isPlainObject(v) && isEmptyRow(v)),
  );
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function expectString(field: string, value: unknown): string {
  if (typeof value !== "string") throw new InputError(field, value, "must be a string");
  if (value.includes("\0")) throw new InputError(field, value, "must not contain a NUL character");
  return value;
}

/** A list input: null/undefined means the default, [] means none; blank rows are dropped. */
export function listOf(field: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === null || value === undefined) return [...fallback];
  if (!Array.isArray(value)) throw new InputError(field, value, "must be a list");
  return value.flatMap((item, i) => (isBlank(item) ? [] : [expectString(`${field}[${i}]`, item).trim()]));
}

export function oneOf<T extends string>(field: string, value: unknown, fallback: readonly T[], allowed: readonly T[]): T[] {
  const items = listOf(field, value, fallback);
  for (const [i, item] of items.entries()) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new InputError(`${field}[${i}]`, item, `is not one of: ${allowed.join(", ")}${didYouMean(item, allowed)}`);
    }
  }
  return [...new Set(items)] as T[];
}
