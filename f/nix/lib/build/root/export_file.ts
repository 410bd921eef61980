// Reads a file written by `nix-store --export` without Nix: which store paths
// it holds, their references and NAR sizes. The whole file is walked (file
// contents skipped, not read) before anything is imported, so a file that is
// not an export, or one cut short, is refused while nothing has changed yet.
//
// The format: for each path, the number 1, the path's NAR, the export magic,
// the path, its references, its deriver and a legacy signature flag; then 0.
// Every number is 64 bits little-endian; every string is its length and its
// bytes padded to 8.
//
// What Nix would refuse only once it has written files (a name it does not
// take, a reference not yet imported, a name or path too long for the file
// system) is refused here. The file is someone else's: a message says where
// and what was expected, never what the file holds.
import { fstatSync, readSync } from "node:fs";
import { STORE_PATH } from "../../nix/store_path.ts";

const EXPORT_MAGIC = 0x4558494e;
const NAR_MAGIC = "nix-archive-1";
/** Longer than any token, name or symlink target of a NAR; file contents are skipped, never read. */
const MAX_TOKEN_BYTES = 4096;

export interface ExportedPath {
  path: string;
  references: string[];
  narSize: number;
  /** The longest path it makes, `/nix/store/<hash>-<name>/...`, in bytes: a root adds its own directory in front. */
  longestPath: number;
}

/** The longest name a file system takes (NAME_MAX), and the longest path the kernel takes (PATH_MAX, less its NUL). */
const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4095;
/** The longest store path name (after the hash) Nix takes. */
const MAX_STORE_NAME = 211;

/** The file is not a complete export: what is wrong, for a message that names the file. */
export class NotAnExport extends Error {
  override name = "NotAnExport";
}

/** Reads the file through a window of CHUNK bytes: tokens are small, and contents are skipped by moving on. */
const CHUNK = 1 << 20;

class Reader {
  offset = 0;
  private window = Buffer.alloc(CHUNK);
  private windowStart = 0;
  private windowLength = 0;
  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {}

  /** The next `bytes` bytes, read into the window when they are not in it yet. */
  private take(bytes: number, what: string): Buffer {
    if (this.offset + bytes > this.size) throw new NotAnExport(`it ends at byte ${this.size}, inside ${what} (cut short?)`);
    if (this.offset < this.windowStart || this.offset + bytes > this.windowStart + this.windowLength) {
      this.windowStart = this.offset;
      this.windowLength = readSync(this.fd, this.window, 0, CHUNK, this.offset);
    }
    const at = this.offset - this.windowStart;
    this.offset += bytes;
    return this.window.subarray(at, at + bytes);
  }

  /** A 64-bit number; one too large for a double comes out approximate, and too large for any length or marker. */
  number(what: string): number {
    return Number(this.take(8, what).readBigUInt64LE(0));
  }

  string(what: string): string {
    const length = this.number(what);
    if (length > MAX_TOKEN_BYTES) {
      throw new NotAnExport(`${what} at byte ${this.offset - 8} claims more than ${MAX_TOKEN_BYTES} bytes`);
    }
    return this.take(Math.ceil(length / 8) * 8, what)
      .subarray(0, length)
      .toString("utf8");
  }

  skipString(what: string): void {
    const padded = Math.ceil(this.number(what) / 8) * 8;
    if (this.offset + padded > this.size) throw new NotAnExport(`it ends at byte ${this.size}, inside ${what} (cut short?)`);
    this.offset += padded;
  }

  expect(token: string, where: string): void {
    const at = this.offset;
    if (this.string(where) !== token) throw new NotAnExport(`expected "${token}" ${where} at byte ${at}, found something else`);
  }
}

/** One NAR node: `( type regular|symlink|directory ... )`, at `pathBytes` into the store path; returns the longest path under it. */
function skipNode(reader: Reader, depth: number, pathBytes: number): number {
  if (depth > 256) throw new NotAnExport("a NAR nests deeper than any file tree");
  reader.expect("(", "opening a NAR node");
  reader.expect("type", "in a NAR node");
  const at = reader.offset;
  const type = reader.string("a NAR node's type");
  let longest = pathBytes;
  if (type === "regular") {
    let token = reader.string("a regular file");
    if (token === "executable") {
      reader.expect("", "after executable");
      token = reader.string("a regular file");
    }
    if (token !== "contents") throw new NotAnExport(`expected "contents" in a NAR file node before byte ${reader.offset}`);
    reader.skipString("a file's contents");
    reader.expect(")", "closing a NAR file node");
  } else if (type === "symlink") {
    reader.expect("target", "in a NAR symlink node");
    const targetAt = reader.offset;
    const target = reader.string("a symlink's target");
    // Nix makes the link with symlink(2), which takes neither an empty target nor one longer than a path.
    if (target === "" || target.includes("\0") || Buffer.byteLength(target) > MAX_PATH_BYTES) {
      throw new NotAnExport(`the symlink target at byte ${targetAt} is empty, too long or holds a NUL: no link can point there`);
    }
    reader.expect(")", "closing a NAR symlink node");
  } else if (type === "directory") {
    let previous: string | null = null;
    for (;;) {
      const token = reader.string("a NAR directory");
      if (token === ")") break;
      if (token !== "entry") throw new NotAnExport(`expected "entry" or ")" in a NAR directory before byte ${reader.offset}`);
      reader.expect("(", "opening a directory entry");
      reader.expect("name", "in a directory entry");
      const nameAt = reader.offset;
      const name = reader.string("an entry's name");
      // As Nix requires when it unpacks: a plain name, entries sorted, none twice (so it is refused here, before anything is written).
      if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
        throw new NotAnExport(
          `the NAR entry name at byte ${nameAt} is not a file name (empty, "." or "..", or holding "/" or NUL)`,
        );
      }
      if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
        throw new NotAnExport(
          `the NAR entry name at byte ${nameAt} is longer than the ${MAX_NAME_BYTES} bytes a file name may have`,
        );
      }
      // Nix compares names as bytes: UTF-8 bytes sort as code points, which UTF-16 (JavaScript's <) does not.
      if (previous !== null && Buffer.compare(Buffer.from(name), Buffer.from(previous)) <= 0) {
        throw new NotAnExport(`NAR entries are not sorted or repeat a name (the entry at byte ${nameAt})`);
      }
      previous = name;
      reader.expect("node", "in a directory entry");
      longest = Math.max(longest, skipNode(reader, depth + 1, pathBytes + 1 + Buffer.byteLength(name)));
      reader.expect(")", "closing a directory entry");
    }
  } else {
    throw new NotAnExport(`the NAR node type at byte ${at} is none of regular, symlink, directory`);
  }
  return longest;
}

/** Whether Nix takes `name` as a store path's name on every version: 2.8 takes ".." and ".-x", later versions refuse them. */
function isStoreName(name: string): boolean {
  return name.length <= MAX_STORE_NAME && name !== "." && name !== ".." && !name.startsWith(".-") && !name.startsWith("..-");
}

/** A store path Nix takes (or, where `optional`, an empty string), read as the next string; `what` names it in a message. */
function readStorePath(reader: Reader, what: string, optional = false): string {
  const at = reader.offset;
  const text = reader.string(what);
  if (optional && text === "") return text;
  if (!STORE_PATH.test(text) || !isStoreName(text.slice(STORE_PREFIX_BYTES))) {
    throw new NotAnExport(
      `${what} at byte ${at} is not a store path Nix takes (/nix/store/<hash>-<name>, the name at most ${MAX_STORE_NAME} characters, not "." or "..")`,
    );
  }
  return text;
}

/** `/nix/store/` and a hash and its dash. */
const STORE_PREFIX_BYTES = "/nix/store/".length + 33;

/**
 * The paths of an export file open as `fd`, in the file's order; the file
 * is read with pread, so the descriptor's offset stays at 0. Throws
 * NotAnExport when the file is not one, is cut short, holds a path twice, or
 * is not a whole closure in the order Nix imports it: each path's
 * references before it (as `nix-store --export $(nix-store -qR PATH)` writes).
 */
export function readExportFile(fd: number): ExportedPath[] {
  const stat = fstatSync(fd);
  if (!stat.isFile()) throw new NotAnExport("it is not a regular file");
  const reader = new Reader(fd, stat.size);
  const paths: ExportedPath[] = [];
  const held = new Set<string>();
  for (let index = 1; ; index++) {
    const markerAt = reader.offset;
    const next = reader.number("the next path's marker");
    if (next === 0) break;
    if (next !== 1) throw new NotAnExport(`byte ${markerAt} holds neither 1 (a path follows) nor 0 (the end), as an export does`);
    const start = reader.offset;
    reader.expect(NAR_MAGIC, "starting a NAR");
    const inside = skipNode(reader, 0, 0);
    const narSize = reader.offset - start;
    if (reader.number("the export magic") !== EXPORT_MAGIC)
      throw new NotAnExport(`no export magic after the NAR ending at byte ${reader.offset - 8}`);
    const path = readStorePath(reader, `path ${index}`);
    if (held.has(path)) throw new NotAnExport(`path ${index} (before byte ${reader.offset}) is one the file held already`);
    const count = reader.number("the number of references");
    if (count > 100_000) throw new NotAnExport(`path ${index} claims more than 100000 references`);
    const references = Array.from({ length: count }, (_, r) => {
      const reference = readStorePath(reader, `reference ${r + 1} of path ${index}`);
      // Nix registers each path as it imports it, with its references, which must be there by then.
      if (reference !== path && !held.has(reference)) {
        throw new NotAnExport(
          `path ${index} references a path the file does not hold before it (export a whole closure: nix-store --export $(nix-store -qR PATH))`,
        );
      }
      return reference;
    });
    readStorePath(reader, `the deriver of path ${index}`, true);
    if (reader.number("the signature flag") === 1) reader.string("a signature");
    held.add(path);
    paths.push({ path, references, narSize, longestPath: path.length + inside });
  }
  if (reader.offset !== stat.size) throw new NotAnExport(`${stat.size - reader.offset} bytes follow the end of the export`);
  if (paths.length === 0) throw new NotAnExport("it holds no store path");
  return paths;
}
