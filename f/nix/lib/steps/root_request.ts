// What goes into a prepared root beside the system: extra closures from the
// store, closures that arrive as `nix-store --export` files, a channel, and
// whether Nix builds the root. Checked whole before anything is written, by
// the flow's input check and by prepare_root itself; a bad value names its
// field and the value.
import { existsSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { type ExportedPath, NotAnExport, readExportFile } from "../build/root/export_file.ts";
import { expectBoolean, expectString, isBlank } from "../config/fields.ts";
import { InputError } from "../core/errors.ts";
import { fileSystemMessage, isFileSystemError } from "../core/files.ts";
import { STORE_PATH } from "../nix/store_path.ts";

/** A closure that arrives as a file: its field, the file, and the paths it holds. */
export interface ClosureFile {
  field: string;
  file: string;
  paths: ExportedPath[];
}

export interface RootRequest {
  /** Store paths whose closures join the system's, each with its field. */
  closures: { field: string; path: string }[];
  closureFiles: ClosureFile[];
  /** The store path set as root's channels profile, or null. */
  channel: string | null;
  nixBuild: boolean;
}

/** The root fields as the step (or the flow's root group) takes them. */
export interface RootFields {
  closures?: unknown;
  closure_files?: unknown;
  channel?: unknown;
  nix_build?: unknown;
}

const MAX_ENTRIES = 100;

/** A list field: null means none; blank rows dropped; at most MAX_ENTRIES strings. */
function entries(field: string, value: unknown): { field: string; value: string }[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new InputError(field, value, "must be a list");
  if (value.length > MAX_ENTRIES) {
    throw new InputError(field, value, `has ${value.length} entries; at most ${MAX_ENTRIES} are accepted`);
  }
  return value.flatMap((item, i) =>
    isBlank(item) ? [] : [{ field: `${field}[${i}]`, value: expectString(`${field}[${i}]`, item).trim() }],
  );
}

function storePathIn(field: string, path: string): string {
  if (!STORE_PATH.test(path)) throw new InputError(field, path, "must be a store path (/nix/store/<hash>-<name>)");
  if (!existsSync(path)) throw new InputError(field, path, "is not in this host's store");
  return path;
}

function closureFile(field: string, file: string): ClosureFile {
  if (!isAbsolute(file)) throw new InputError(field, file, "must be an absolute path");
  try {
    // Checked before opening: a FIFO or a device is refused unread.
    if (!statSync(file).isFile()) throw new NotAnExport("it is not a regular file");
    return { field, file, paths: readExportFile(file) };
  } catch (error) {
    if (error instanceof NotAnExport) {
      throw new InputError(field, file, `is not a file written by nix-store --export: ${error.message}`);
    }
    if (isFileSystemError(error)) throw new InputError(field, file, `cannot be read: ${fileSystemMessage(error)}`);
    throw error;
  }
}

/**
 * Checks the root fields (named `<prefix><field>`): store paths that are
 * store paths in this host's store, export files read whole, and a
 * `nix_build` that takes no file (a build reads its closures from the store).
 * Writes nothing.
 */
export function checkRootRequest(fields: RootFields, prefix = ""): RootRequest {
  const closures = entries(`${prefix}closures`, fields.closures).map(({ field, value }) => ({
    field,
    path: storePathIn(field, value),
  }));
  const closureFiles = entries(`${prefix}closure_files`, fields.closure_files).map(({ field, value }) =>
    closureFile(field, value),
  );
  let channel: string | null = null;
  if (!isBlank(fields.channel)) {
    channel = storePathIn(`${prefix}channel`, expectString(`${prefix}channel`, fields.channel).trim());
    // A channel is a tree of Nix expressions that nix-env reads through ~/.nix-defexpr: a directory.
    if (!statSync(channel).isDirectory()) {
      throw new InputError(`${prefix}channel`, channel, "is not a directory: a channel is a store path holding Nix expressions");
    }
  }
  const nixBuild = expectBoolean(`${prefix}nix_build`, fields.nix_build, false);
  const first = closureFiles[0];
  if (nixBuild && first !== undefined) {
    throw new InputError(
      first.field,
      first.file,
      `cannot go into a root Nix builds (${prefix}nix_build), which takes its closures from the store: ` +
        "import the file there first (nix-store --import), then give its top path in closures",
    );
  }
  return { closures, closureFiles, channel, nixBuild };
}
