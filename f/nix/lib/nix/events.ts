// Nix's `--log-format internal-json` protocol: one `@nix {json}` event per
// stderr line, other lines plain text. Activity ids are `counter + (pid << 32)`
// and fields may be u64, both beyond what a JS number holds exactly, so every
// integer literal that is not a safe integer is read as a decimal string and
// ids are always kept as strings. Every Nix adds record types and fields (Nix
// 2.20+, Determinate Nix): what is not known here is read as nothing, never
// shown.

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

/** A field of an event: integers beyond 2^53 stay decimal strings; a field of another shape (a list, an object) is null. */
export type Field = string | number | null;

export type NixEvent =
  | { action: "start"; id: string; parent: string; level: number; type: number; text: string; fields: Field[] }
  | { action: "stop"; id: string }
  | { action: "result"; id: string; type: number; fields: Field[] }
  | { action: "msg"; level: number; msg: string }
  | { action: "text"; text: string }
  /** A record of an action this code does not know: nothing to show or count. */
  | { action: "unknown" };

const PREFIX = "@nix ";
const TOKENS = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
/** Colours and cursor moves (CSI), and hyperlinks and titles (OSC), which newer Nix puts in messages. */
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;

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

const asId = (value: unknown): string => (typeof value === "number" || typeof value === "string" ? String(value) : "0");
const asNumber = (value: unknown): number => (typeof value === "number" ? value : Number(value ?? 0));
const asText = (value: unknown): string => (typeof value === "string" ? stripAnsi(value) : "");
const asFields = (value: unknown): Field[] =>
  Array.isArray(value) ? value.map((f) => (typeof f === "number" || typeof f === "string" ? f : null)) : [];

/**
 * One stderr line: an event; a plain line, or one Nix meant as an event but
 * that is not JSON, as text; a record of an unknown action as `unknown`.
 */
export function parseLogLine(line: string): NixEvent {
  if (!line.startsWith(PREFIX)) return { action: "text", text: line };
  let raw: Record<string, unknown>;
  try {
    raw = parseJsonExactIntegers(line.slice(PREFIX.length)) as Record<string, unknown>;
  } catch {
    return { action: "text", text: line };
  }
  if (typeof raw !== "object" || raw === null) return { action: "unknown" };
  switch (raw.action) {
    case "start":
      return {
        action: "start",
        id: asId(raw.id),
        parent: asId(raw.parent),
        level: asNumber(raw.level),
        type: asNumber(raw.type),
        text: asText(raw.text),
        fields: asFields(raw.fields),
      };
    case "stop":
      return { action: "stop", id: asId(raw.id) };
    case "result":
      return { action: "result", id: asId(raw.id), type: asNumber(raw.type), fields: asFields(raw.fields) };
    case "msg":
      return typeof raw.msg === "string"
        ? { action: "msg", level: asNumber(raw.level), msg: stripAnsi(raw.msg) }
        : { action: "unknown" };
    default:
      return { action: "unknown" };
  }
}

/** A count from a field; values beyond 2^53 (u64 sentinels), and fields that are no number, read as null: unknown. */
export function count(field: Field | undefined): number | null {
  const value = typeof field === "number" ? field : typeof field === "string" && field !== "" ? Number(field) : Number.NaN;
  return Number.isSafeInteger(value) && value >= 0 ? value : null;
}
