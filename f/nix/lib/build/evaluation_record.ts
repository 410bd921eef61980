// Evaluate once. Evaluating a locked `path:` flake is a pure function of
// what it reads: the config dir's files (flake.lock pins every input by its
// NAR hash, source overrides included), the Nix that evaluates, and the
// settings it runs with. Nix 2.26 and later cache no evaluation of a `path:`
// flake, so a record of our own maps that key to the system it gave; a build
// with the same key and that system still in the store evaluates nothing.
// The records are shared by every VM of the worker (VMs equal but for their
// name, with hostname_at_boot, render equal files and so share one), each
// named by its key and marked as ours.
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, fstatSync, lstatSync, openSync, readdirSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import { SetupError } from "../core/errors.ts";
import { MAX_NIX_FILE_BYTES, makeDirs, writeCache } from "../core/files.ts";
import { STORE_PATH } from "../nix/store_path.ts";
import type { OverrideReport } from "./override_reach.ts";

/** Bumped when what goes into a key changes: records of another format are never matched. */
const KEY_FORMAT = "nixos-closure evaluation 2";

/** What a VM's name may be (NixOS's host names): a record naming anything else is not shown, nor used. */
export const VM_NAME = /^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

export interface EvaluationRecord {
  key: string;
  /** The system the evaluation gave (the toplevel's output path). */
  toplevel: string;
  /** Its derivation. */
  drv: string | null;
  /** When it was evaluated (ISO 8601). */
  evaluated_at: string;
  /** The VM whose build evaluated it. */
  evaluated_by: string;
  /** What the override check found in that evaluation. */
  overrides: OverrideReport[];
}

/** Besides the config dir's files, what an evaluation depends on. */
export interface EvaluatorIdentity {
  /** The nix binary as a file (so an upgrade in place counts), and what `nix --version` says. */
  nix: { path: string; ino: number; size: number; mtimeMs: number; version: string };
  /** Every setting Nix resolved (defaults, nix.conf and its includes, NIX_CONFIG, our --option arguments). */
  settings: Record<string, unknown>;
  /** The NIX_* variables of the environment Nix runs in (a store, a state dir, a config dir). */
  environment: Record<string, string>;
}

/** The config dir's files as the key sees them, or why no key can be made (then every build evaluates). */
export type ConfigDirDigest = { files: [string, string][] } | { unkeyable: string };

/** Entries of a config dir that the evaluation never reads: our links to its results and roots, and a root's lock. */
const IGNORED_LINKS: readonly string[] = ["result", "result-previous", "root"];
const IGNORED_FILES: readonly string[] = ["root.lock"];
const MAX_ENTRIES = 64;
const MAX_RECORD_BYTES = 256 * 1024;
/** A real NixOS closure has thousands of paths, about 150 bytes each here. */
const MAX_CLOSURE_BYTES = 16 * 1024 * 1024;

/** Opens a file without following a link or waiting on a FIFO; null when it does not exist. */
function openPlain(path: string): number | null {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** The content of a regular file of at most `maxBytes`, read through `fd`, or why not. */
function readOpened(fd: number, maxBytes: number): Buffer | string {
  const stat = fstatSync(fd);
  if (!stat.isFile()) return "not a regular file";
  if (stat.size > maxBytes) return `larger than ${maxBytes} bytes`;
  const buffer = Buffer.alloc(stat.size);
  const read = readSync(fd, buffer, 0, stat.size, 0);
  return buffer.subarray(0, read);
}

/**
 * The files of a config dir that Nix copies with its `path:` flake, each by
 * its SHA-256. Our links (results, and the VM's prepared roots placed in it:
 * `rootLinks`) are left out. Anything else (a directory, a file someone
 * added) is read into the key too if it is a small regular file; else no key
 * is made: what the evaluation could read is not known.
 */
export function configDirDigest(dir: string, rootLinks: readonly string[] = []): ConfigDirDigest {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (entries.length > MAX_ENTRIES) return { unkeyable: `it holds ${entries.length} entries` };
  const files: [string, string][] = [];
  for (const entry of entries) {
    if (entry.isSymbolicLink() && (IGNORED_LINKS.includes(entry.name) || rootLinks.includes(entry.name))) continue;
    if (entry.isFile() && IGNORED_FILES.includes(entry.name)) continue;
    if (!entry.isFile()) return { unkeyable: `${entry.name} in it is not a regular file` };
    const fd = openPlain(join(dir, entry.name));
    if (fd === null) return { unkeyable: `${entry.name} went away while it was read` };
    try {
      const content = readOpened(fd, MAX_NIX_FILE_BYTES);
      if (typeof content === "string") return { unkeyable: `${entry.name} in it is ${content}` };
      files.push([entry.name, createHash("sha256").update(content).digest("hex")]);
    } finally {
      closeSync(fd);
    }
  }
  if (!files.some(([name]) => name === "flake.lock")) return { unkeyable: "it has no flake.lock yet" };
  return { files };
}

/** The key of an evaluation: a digest of everything it depends on. */
export function evaluationKey(files: readonly [string, string][], evaluator: EvaluatorIdentity): string {
  return keyOfParts(keyParts(files, evaluator));
}

/** What went into a key, part by part: to say which changed since a VM's last build. */
export interface KeyParts {
  /** Each file of the config dir by its SHA-256. */
  files: Record<string, string>;
  nix: string;
  settings: string;
  environment: string;
}

/**
 * The parts of a key. Nix's `eval-cache` switch is not one: it decides
 * whether a record is used, never what an evaluation gives.
 */
export function keyParts(files: readonly [string, string][], evaluator: EvaluatorIdentity): KeyParts {
  const digest = (value: unknown) => createHash("sha256").update(JSON.stringify(value)).digest("hex");
  const sorted = (record: Record<string, unknown>) =>
    Object.keys(record)
      .filter((name) => name !== "eval-cache")
      .sort()
      .map((name) => [name, record[name]]);
  return {
    files: Object.fromEntries(files),
    nix: digest(evaluator.nix),
    settings: digest(sorted(evaluator.settings)),
    environment: digest(sorted(evaluator.environment)),
  };
}

/** The key made of its parts. */
export function keyOfParts(parts: KeyParts): string {
  const files = Object.keys(parts.files)
    .sort()
    .map((name) => [name, parts.files[name]]);
  return createHash("sha256")
    .update(JSON.stringify([KEY_FORMAT, files, parts.nix, parts.settings, parts.environment, process.arch]))
    .digest("hex");
}

/** What differs between the parts of two keys, in words: `default.nix`, `the Nix`, ... */
export function changedParts(before: KeyParts, after: KeyParts): string[] {
  const names = [...new Set([...Object.keys(before.files), ...Object.keys(after.files)])].sort();
  return [
    ...names.filter((name) => before.files[name] !== after.files[name]),
    ...(before.nix === after.nix ? [] : ["the Nix"]),
    ...(before.settings === after.settings ? [] : ["Nix's settings"]),
    ...(before.environment === after.environment ? [] : ["the NIX_* environment"]),
  ];
}

/** Whether a value read back is a KeyParts. */
export function isKeyParts(value: unknown): value is KeyParts {
  const parts = value as KeyParts | null;
  return (
    typeof parts?.files === "object" &&
    parts.files !== null &&
    Object.values(parts.files).every((sha) => typeof sha === "string") &&
    typeof parts.nix === "string" &&
    typeof parts.settings === "string" &&
    typeof parts.environment === "string"
  );
}

export function recordPath(recordsDir: string, key: string): string {
  return join(recordsDir, `${key}.json`);
}

/**
 * Why records in `dir` cannot be trusted, or null when they can: the
 * directory must be a real directory of this user that nobody else may
 * write (a record names the system a VM boots).
 */
export function untrustedDirectory(dir: string): string | null {
  const stat = lstatSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) return null;
  if (!stat.isDirectory()) return `${dir} is not a directory`;
  if (typeof process.getuid === "function" && stat.uid !== process.getuid()) return `${dir} belongs to another user`;
  if ((stat.mode & 0o022) !== 0) return `others may write to ${dir}`;
  return null;
}

function isReport(value: unknown): value is OverrideReport {
  const r = value as OverrideReport | null;
  return (
    typeof r?.pkg === "string" &&
    typeof r.source === "string" &&
    STORE_PATH.test(r.source) &&
    typeof r.optional === "boolean" &&
    Array.isArray(r.built) &&
    r.built.every((path) => typeof path === "string" && STORE_PATH.test(path))
  );
}

function asRecord(value: unknown, key: string): EvaluationRecord | string {
  const r = value as (Partial<EvaluationRecord> & { by?: unknown }) | null;
  if (r === null || typeof r !== "object" || r.by !== "nixos-closure") return "it is not a record of nixos-closure";
  if (r.key !== key) return "it is the record of another key";
  if (typeof r.toplevel !== "string" || !STORE_PATH.test(r.toplevel)) return "its toplevel is not a store path";
  if (r.drv !== null && (typeof r.drv !== "string" || !STORE_PATH.test(r.drv) || !r.drv.endsWith(".drv")))
    return "its derivation is not a .drv store path";
  if (typeof r.evaluated_at !== "string" || Number.isNaN(Date.parse(r.evaluated_at))) return "its time is not a date";
  if (typeof r.evaluated_by !== "string" || !VM_NAME.test(r.evaluated_by)) return "it names no VM";
  if (!Array.isArray(r.overrides) || !r.overrides.every(isReport)) return "its override reports are malformed";
  return {
    key,
    toplevel: r.toplevel,
    drv: r.drv ?? null,
    evaluated_at: r.evaluated_at,
    evaluated_by: r.evaluated_by,
    overrides: r.overrides,
  };
}

/** A record found: usable, or not (and why); null when there is none. */
export type RecordLookup = { record: EvaluationRecord } | { unusable: string } | null;

/**
 * The record of `key`, read as a file we may not have written: no link
 * followed, no FIFO waited on, a size cap, this user's and nobody else's to
 * write; corrupt, truncated or foreign content is unusable, never quoted.
 */
export function readRecord(recordsDir: string, key: string): RecordLookup {
  const path = recordPath(recordsDir, key);
  const found = readOwnJson(recordsDir, path, MAX_RECORD_BYTES);
  if (found === null || "unusable" in found) return found;
  const record = asRecord(found.value, key);
  return typeof record === "string" ? { unusable: `${path}: ${record}` } : { record };
}

/** JSON of ours in `dir`, read with the care of readRecord: the value, or why it cannot be used; null when missing. */
function readOwnJson(dir: string, path: string, maxBytes: number): { value: unknown } | { unusable: string } | null {
  try {
    const distrust = untrustedDirectory(dir);
    if (distrust !== null) return { unusable: distrust };
    const fd = openPlain(path);
    if (fd === null) return null;
    try {
      const stat = fstatSync(fd);
      if (typeof process.getuid === "function" && stat.uid !== process.getuid())
        return { unusable: `${path} belongs to another user` };
      if ((stat.mode & 0o022) !== 0) return { unusable: `others may write to ${path}` };
      const content = readOpened(fd, maxBytes);
      if (typeof content === "string") return { unusable: `${path} is ${content}` };
      try {
        const value: unknown = JSON.parse(content.toString("utf8"));
        if ((value as { by?: unknown } | null)?.by !== "nixos-closure")
          return { unusable: `${path} is not a file of nixos-closure` };
        return { value };
      } catch {
        return { unusable: `${path} is not JSON (a write cut short?)` };
      }
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { unusable: `${path} cannot be read${code ? ` (${code})` : ""}` };
  }
}

/**
 * Writes the record of an evaluation; a record that cannot be written (a
 * full disk, a directory others may write) only costs the next build an
 * evaluation, so it never fails one: returns why not, or null.
 */
export function writeRecord(recordsDir: string, record: EvaluationRecord): string | null {
  return writeOwnJson(recordsDir, recordPath(recordsDir, record.key), { ...record });
}

/** Writes JSON of ours into `dir` (made if need be, and trusted as readRecord trusts it); why not, or null. */
function writeOwnJson(dir: string, path: string, fields: Record<string, unknown>): string | null {
  try {
    makeDirs(dir, 0o755);
  } catch (error) {
    return error instanceof SetupError ? error.message : String(error);
  }
  const distrust = untrustedDirectory(dir);
  if (distrust !== null) return distrust;
  return writeCache(path, fields) ? null : `${path} cannot be written`;
}

/** Closure sizes as the closure report takes them. */
export interface ClosureSize {
  path: string;
  narSize: number;
}

/** A system's closure never changes: kept beside the records, by the system's store path, for every VM that has it. */
function closurePath(recordsDir: string, toplevel: string): string {
  const base = toplevel.slice(toplevel.lastIndexOf("/") + 1);
  return join(recordsDir, `${base.slice(0, 32)}.closure.json`);
}

/** The closure of `toplevel` another build kept, or null (missing, unusable, or not this system's). */
export function readSharedClosure(recordsDir: string, toplevel: string): ClosureSize[] | null {
  const found = readOwnJson(recordsDir, closurePath(recordsDir, toplevel), MAX_CLOSURE_BYTES);
  if (found === null || "unusable" in found) return null;
  const cached = found.value as { toplevel?: unknown; closure?: unknown };
  if (cached.toplevel !== toplevel || !Array.isArray(cached.closure)) return null;
  const closure = cached.closure as ClosureSize[];
  const wellFormed = closure.every(
    (info) => typeof info?.path === "string" && STORE_PATH.test(info.path) && Number.isSafeInteger(info.narSize),
  );
  return wellFormed && closure.some((info) => info.path === toplevel) ? closure : null;
}

/** Keeps a system's closure for the next VM that has it; a failure only costs that VM a Nix call. */
export function writeSharedClosure(recordsDir: string, toplevel: string, closure: readonly ClosureSize[]): void {
  writeOwnJson(recordsDir, closurePath(recordsDir, toplevel), {
    toplevel,
    closure: closure.map(({ path, narSize }) => ({ path, narSize })),
  });
}

/** A temporary file of writeFileAtomic (`.<name>.<pid>.<hex>.tmp`) an hour old is one a killed write left. */
const LEFT_TEMPORARY = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;
const TEMPORARY_AGE_MS = 3600 * 1000;

/**
 * Forgets the records and kept closures whose system is no longer in the
 * store (after Nix's garbage collector): only files of ours, in a directory
 * we trust, each read again before it goes; and temporary files a killed
 * write left there. Returns how many records went.
 */
export function forgetCollected(recordsDir: string): number {
  if (lstatSync(recordsDir, { throwIfNoEntry: false }) === undefined || untrustedDirectory(recordsDir) !== null) return 0;
  let forgotten = 0;
  for (const name of readdirSync(recordsDir)) {
    if (LEFT_TEMPORARY.test(name)) {
      const stat = lstatSync(join(recordsDir, name), { throwIfNoEntry: false });
      if (stat?.isFile() && Date.now() - stat.mtimeMs > TEMPORARY_AGE_MS) rmSync(join(recordsDir, name), { force: true });
      continue;
    }
    if (!/^[0-9a-z]+(?:\.closure)?\.json$/.test(name)) continue;
    const path = join(recordsDir, name);
    const found = readOwnJson(recordsDir, path, MAX_CLOSURE_BYTES);
    if (found === null || "unusable" in found) continue;
    const toplevel = (found.value as { toplevel?: unknown }).toplevel;
    if (typeof toplevel !== "string" || !STORE_PATH.test(toplevel) || existsSync(toplevel)) continue;
    rmSync(path, { force: true });
    forgotten++;
  }
  return forgotten;
}
