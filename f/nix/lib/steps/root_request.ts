// What goes into a prepared root beside the system: extra closures from the
// store, closures that arrive as `nix-store --export` files, a channel, and
// whether Nix builds the root. Checked whole before anything is written, by
// the flow's input check and by prepare_root itself; a bad value names its
// field and the value.
import { closeSync, existsSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { type ExportedPath, NotAnExport, readExportFile } from "../build/root/export_file.ts";
import { expectBoolean, expectString, isBlank } from "../config/fields.ts";
import { InputError } from "../core/errors.ts";
import { FileRefused, fileSystemMessage, hiddenAncestor, isFileSystemError, openFile } from "../core/files.ts";
import { formatBytes } from "../core/format.ts";
import { STORE_PATH } from "../nix/store_path.ts";

/**
 * A closure that arrives as a file: its field, the file as named, the
 * descriptor it was checked through (what Nix is given: the name is never
 * opened again), its length then, and the paths it holds.
 */
export interface ClosureFile {
  field: string;
  file: string;
  fd: number;
  size: number;
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

/** Holes a closure file may have (bytes its length claims that are not on disk), beyond half its length. */
const MAX_HOLE_BYTES = 1024 * 1024;

/**
 * Opens and checks a closure file: a regular file (never a FIFO or a
 * device), readable by everyone where it is, links followed (what is
 * imported lands in a root everyone can read), whole on disk, and a whole
 * export. Its content is never quoted.
 */
function closureFile(field: string, file: string): ClosureFile {
  if (!isAbsolute(file)) throw new InputError(field, file, "must be an absolute path");
  let fd: number | null = null;
  try {
    const opened = openFile(file);
    fd = opened.fd;
    const hidden = (opened.stat.mode & 0o004) === 0 ? opened.realPath : hiddenAncestor(opened.realPath);
    if (hidden !== null) {
      throw new InputError(
        field,
        file,
        `is ${hidden === opened.realPath ? "" : "in "}${hidden}, which only its owner may read; its paths would go into ` +
          "the root, where everyone can read them: make it readable (chmod o+r, and o+x on its directories) or choose another file",
      );
    }
    const { size, blocks } = opened.stat;
    // Nix writes (and holds in memory) every byte a file claims: a sparse file claims far more than it is.
    if (size - blocks * 512 > Math.max(MAX_HOLE_BYTES, size / 2)) {
      throw new InputError(
        field,
        file,
        `is sparse: it claims ${formatBytes(size)} but holds ${formatBytes(blocks * 512)} on disk; ` +
          "write it out whole (cp --sparse=never) or export the closure again",
      );
    }
    const checked: ClosureFile = { field, file, fd, size, paths: readExportFile(fd) };
    fd = null;
    return checked;
  } catch (error) {
    if (error instanceof NotAnExport) {
      throw new InputError(field, file, `is not a file written by nix-store --export: ${error.message}`);
    }
    if (error instanceof FileRefused) {
      throw new InputError(field, file, `is not a file written by nix-store --export: it ${error.reason}`);
    }
    if (isFileSystemError(error)) throw new InputError(field, file, `cannot be read: ${fileSystemMessage(error)}`);
    throw error;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Closes the closure files of a request: their descriptors are held from the check until Nix has read them. */
export function closeRootRequest(request: RootRequest): void {
  for (const file of request.closureFiles) closeSync(file.fd);
}

/**
 * Checks the root fields (named `<prefix><field>`): store paths that are
 * store paths in this host's store, export files read whole, and a
 * `nix_build` that takes no file (a build reads its closures from the store).
 * Writes nothing; the closure files stay open, for Nix to read what was
 * checked (closeRootRequest closes them).
 */
export function checkRootRequest(fields: RootFields, prefix = ""): RootRequest {
  const closures = entries(`${prefix}closures`, fields.closures).map(({ field, value }) => ({
    field,
    path: storePathIn(field, value),
  }));
  let channel: string | null = null;
  if (!isBlank(fields.channel)) {
    channel = storePathIn(`${prefix}channel`, expectString(`${prefix}channel`, fields.channel).trim());
    // A channel is a tree of Nix expressions that nix-env reads through ~/.nix-defexpr: a directory.
    if (!statSync(channel).isDirectory()) {
      throw new InputError(`${prefix}channel`, channel, "is not a directory: a channel is a store path holding Nix expressions");
    }
  }
  const nixBuild = expectBoolean(`${prefix}nix_build`, fields.nix_build, false);
  const files = entries(`${prefix}closure_files`, fields.closure_files);
  const first = files[0];
  if (nixBuild && first !== undefined) {
    throw new InputError(
      first.field,
      first.value,
      `cannot go into a root Nix builds (${prefix}nix_build), which takes its closures from the store: ` +
        "import the file there first (nix-store --import), then give its top path in closures",
    );
  }
  // Opened last, and all closed again when one is refused.
  const closureFiles: ClosureFile[] = [];
  try {
    for (const { field, value } of files) closureFiles.push(closureFile(field, value));
  } catch (error) {
    closeRootRequest({ closures, closureFiles, channel, nixBuild });
    throw error;
  }
  return { closures, closureFiles, channel, nixBuild };
}
