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
  path: string;
  narSize: number;
  references: string[];
}

/**
 * Reads `nix path-info --json`: a list before 2.19, an object keyed by path
 * from 2.19 on (newer formats key by the path's base name: the store dir is
 * put back).
 */
export function parsePathInfoJson(stdout: string, storeDir = "/nix/store"): PathInfo[] {
  const parsed = JSON.parse(stdout) as unknown;
  const entries: [string, Record<string, unknown>][] = Array.isArray(parsed)
    ? parsed.map((e: Record<string, unknown>) => [String(e.path), e])
    : Object.entries(parsed as Record<string, Record<string, unknown> | null>).flatMap(([path, e]) => (e ? [[path, e]] : []));
  return entries.map(([path, e]) => ({
    path: path.includes("/") ? path : `${storeDir}/${path}`,
    narSize: Number(e.narSize ?? 0),
    references: Array.isArray(e.references) ? e.references.map(String) : [],
  }));
}
