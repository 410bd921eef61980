// Nix's `--log-format internal-json` protocol: one `@nix {json}` event per
// stderr line, other lines plain text. Activity ids are `counter + (pid << 32)`
// and fields may be u64, both beyond what a JS number holds exactly, so every
// integer literal that is not a safe integer is read as a decimal string and
// ids are always kept as strings.

export const ActivityType = {
  copyPath: 100,
  fileTransfer: 101,
  realise: 102,
  copyPaths: 103,
  builds: 104,
  build: 105,
  substitute: 108,
  queryPathInfo: 109,
  buildWaiting: 111,
} as const;

export const ResultType = {
  buildLogLine: 101,
  setPhase: 104,
  progress: 105,
  setExpected: 106,
} as const;

/** A field of an event: integers beyond 2^53 stay decimal strings. */
export type Field = string | number;

export type NixEvent =
  | { action: "start"; id: string; parent: string; level: number; type: number; text: string; fields: Field[] }
  | { action: "stop"; id: string }
  | { action: "result"; id: string; type: number; fields: Field[] }
  | { action: "msg"; level: number; msg: string }
  | { action: "text"; text: string };

const PREFIX = "@nix ";
const TOKENS = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** JSON.parse, but integers that a double would round come back as strings. */
export function parseJsonExactIntegers(text: string): unknown {
  const safe = text.replace(TOKENS, (token) =>
    token.startsWith('"') || !/^-?\d+$/.test(token) || Number.isSafeInteger(Number(token)) ? token : `"${token}"`,
  );
  return JSON.parse(safe);
}

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

const asId = (value: unknown): string => (value === undefined || value === null ? "0" : String(value));
const asNumber = (value: unknown): number => (typeof value === "number" ? value : Number(value ?? 0));
const asFields = (value: unknown): Field[] =>
  Array.isArray(value) ? value.map((f) => (typeof f === "number" || typeof f === "string" ? f : String(f))) : [];

/** One stderr line: an event, or the line itself as text (unknown actions too). */
export function parseLogLine(line: string): NixEvent {
  if (!line.startsWith(PREFIX)) return { action: "text", text: line };
  let raw: Record<string, unknown>;
  try {
    raw = parseJsonExactIntegers(line.slice(PREFIX.length)) as Record<string, unknown>;
  } catch {
    return { action: "text", text: line };
  }
  switch (raw?.action) {
    case "start":
      return {
        action: "start",
        id: asId(raw.id),
        parent: asId(raw.parent),
        level: asNumber(raw.level),
        type: asNumber(raw.type),
        text: stripAnsi(String(raw.text ?? "")),
        fields: asFields(raw.fields),
      };
    case "stop":
      return { action: "stop", id: asId(raw.id) };
    case "result":
      return { action: "result", id: asId(raw.id), type: asNumber(raw.type), fields: asFields(raw.fields) };
    case "msg":
      return { action: "msg", level: asNumber(raw.level), msg: stripAnsi(String(raw.msg ?? "")) };
    default:
      return { action: "text", text: line };
  }
}

/** A count from a field; values beyond 2^53 (u64 sentinels) read as null: unknown. */
export function count(field: Field | undefined): number | null {
  const value = typeof field === "number" ? field : Number(field);
  return Number.isSafeInteger(value) && value >= 0 ? value : null;
}
