// The JSON Nix prints, read into typed values across the versions' shapes.
import { SetupError } from "../core/errors.ts";

export interface BuildResult {
  drvPath: string;
  outputs: Record<string, string>;
}

/** Reads `nix build --json`: `[{"drvPath": ..., "outputs": {"out": ...}}]` (2.12+ adds timing keys). */
export function parseBuildJson(stdout: string): BuildResult[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new SetupError(`nix build --json printed something that is not JSON: ${stdout.slice(0, 200)}`);
  }
  if (!Array.isArray(parsed)) throw new SetupError(`nix build --json printed ${stdout.slice(0, 200)}, not a list`);
  return parsed.map((entry) => {
    const outputs = Object.fromEntries(
      Object.entries((entry?.outputs ?? {}) as Record<string, unknown>).filter(
        (pair): pair is [string, string] => typeof pair[1] === "string",
      ),
    );
    return { drvPath: String(entry?.drvPath ?? ""), outputs };
  });
}

export interface PathInfo {
  /** The full store path. */
  path: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
}

type Entry = Record<string, unknown>;

const isEntry = (value: unknown): value is Entry => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Reads `nix path-info --json` in every shape a supported Nix prints: a list
 * of `{"path", ...}` before 2.19 and in Lix (`"valid": false` for a path not
 * in the store); an object keyed by full store path from 2.19 on, and with
 * `--json-format 1` (null for a path not in the store); `--json-format 2`
 * (2.33+): `{"info": {<base name>: ...}, "storeDir"}`, paths and references
 * as base names, `ca` structured. Paths and references come back as full
 * store paths; invalid paths are left out; fields not read here (`ca`,
 * `deriver`, signatures, any new one) are ignored, whatever their shape.
 */
export function parsePathInfoJson(stdout: string): PathInfo[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new SetupError(`nix path-info --json printed something that is not JSON: ${stdout.slice(0, 200)}`);
  }
  let entries: [string, unknown][];
  let storeDir = "/nix/store";
  if (Array.isArray(parsed)) {
    entries = parsed.map((entry) => [String(isEntry(entry) ? entry.path : ""), entry]);
  } else if (isEntry(parsed) && isEntry(parsed.info)) {
    if (typeof parsed.storeDir === "string") storeDir = parsed.storeDir;
    entries = Object.entries(parsed.info);
  } else if (isEntry(parsed)) {
    entries = Object.entries(parsed);
  } else {
    throw new SetupError(`nix path-info --json printed ${stdout.slice(0, 200)}, not a list or an object of paths`);
  }
  const full = (path: string) => (path.startsWith("/") ? path : `${storeDir}/${path}`);
  return entries.flatMap(([path, entry]) =>
    isEntry(entry) && entry.valid !== false && path !== ""
      ? [
          {
            path: full(path),
            narSize: Number(entry.narSize ?? 0),
            references: Array.isArray(entry.references) ? entry.references.map((ref) => full(String(ref))) : [],
          },
        ]
      : [],
  );
}
