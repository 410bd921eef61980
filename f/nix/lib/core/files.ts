// File writes that never leave a half-written file behind.
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** Reads a file, or null when it does not exist. */
export function readIfExists(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/**
 * Writes `content` to `path` through a temporary file renamed into place, so a
 * reader sees the old file or the new one, never a mix. A file that already
 * holds `content` is left untouched (its mtime too). Returns whether it wrote.
 */
export function writeFileAtomic(path: string, content: string): boolean {
  if (readIfExists(path) === content) return false;
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    writeFileSync(temporary, content, { mode: 0o644 });
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  return true;
}
