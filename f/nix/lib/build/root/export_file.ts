// Reads a file written by `nix-store --export` without Nix: which store paths
// it holds, their references and NAR sizes. The whole file is walked (file
// contents skipped, not read) before anything is imported, so a file that is
// not an export, or one cut short, is refused while nothing has changed yet.
//
// The format: for each path, the number 1, the path's NAR, the export magic,
// the path, its references, its deriver and a legacy signature flag; then 0.
// Every number is 64 bits little-endian; every string is its length and its
// bytes padded to 8.
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { STORE_PATH } from "../../nix/store_path.ts";

const EXPORT_MAGIC = 0x4558494e;
const NAR_MAGIC = "nix-archive-1";
/** Longer than any token, name or symlink target of a NAR; file contents are skipped, never read. */
const MAX_TOKEN_BYTES = 4096;

export interface ExportedPath {
  path: string;
  references: string[];
  narSize: number;
}

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
    if (length > MAX_TOKEN_BYTES) throw new NotAnExport(`${what} at byte ${this.offset - 8} is ${length} bytes long`);
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
    const found = this.string(where);
    if (found !== token)
      throw new NotAnExport(`expected "${token}" ${where} at byte ${this.offset}, found ${JSON.stringify(found.slice(0, 40))}`);
  }
}

/** One NAR node: `( type regular|symlink|directory ... )`. */
function skipNode(reader: Reader, depth: number): void {
  if (depth > 256) throw new NotAnExport("a NAR nests deeper than any file tree");
  reader.expect("(", "opening a NAR node");
  reader.expect("type", "in a NAR node");
  const type = reader.string("a NAR node's type");
  if (type === "regular") {
    let token = reader.string("a regular file");
    if (token === "executable") {
      reader.expect("", "after executable");
      token = reader.string("a regular file");
    }
    if (token !== "contents") throw new NotAnExport(`expected "contents" in a NAR file node, found ${JSON.stringify(token)}`);
    reader.skipString("a file's contents");
    reader.expect(")", "closing a NAR file node");
  } else if (type === "symlink") {
    reader.expect("target", "in a NAR symlink node");
    reader.string("a symlink's target");
    reader.expect(")", "closing a NAR symlink node");
  } else if (type === "directory") {
    let previous: string | null = null;
    for (;;) {
      const token = reader.string("a NAR directory");
      if (token === ")") break;
      if (token !== "entry") throw new NotAnExport(`expected "entry" in a NAR directory, found ${JSON.stringify(token)}`);
      reader.expect("(", "opening a directory entry");
      reader.expect("name", "in a directory entry");
      const name = reader.string("an entry's name");
      // As Nix requires when it unpacks: a plain name, entries sorted, none twice (so it is refused here, before anything is written).
      if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
        throw new NotAnExport(`a NAR entry has the invalid name ${JSON.stringify(name.slice(0, 120))}`);
      }
      // Nix compares names as bytes: UTF-8 bytes sort as code points, which UTF-16 (JavaScript's <) does not.
      if (previous !== null && Buffer.compare(Buffer.from(name), Buffer.from(previous)) <= 0) {
        throw new NotAnExport(`NAR entries are not sorted or repeat a name (${JSON.stringify(name.slice(0, 120))})`);
      }
      previous = name;
      reader.expect("node", "in a directory entry");
      skipNode(reader, depth + 1);
      reader.expect(")", "closing a directory entry");
    }
  } else {
    throw new NotAnExport(`a NAR node has the unknown type ${JSON.stringify(type)}`);
  }
}

function storePath(text: string, what: string): string {
  if (!STORE_PATH.test(text)) throw new NotAnExport(`${what} ${JSON.stringify(text.slice(0, 120))} is not a store path`);
  return text;
}

/**
 * The paths of an export file, in the file's order. Throws NotAnExport when
 * the file is not one, is cut short, or is not a whole closure (a path
 * references one the file does not hold: export `nix-store -qR` of it).
 */
export function readExportFile(file: string): ExportedPath[] {
  // Non-blocking, and checked once open: a FIFO is refused, never waited on.
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new NotAnExport("it is not a regular file");
    const reader = new Reader(fd, stat.size);
    const paths: ExportedPath[] = [];
    for (;;) {
      const next = reader.number("the next path's marker");
      if (next === 0) break;
      if (next !== 1)
        throw new NotAnExport(`byte ${reader.offset - 8} holds ${next} where an export has 1 (a path follows) or 0 (the end)`);
      const start = reader.offset;
      reader.expect(NAR_MAGIC, "starting a NAR");
      skipNode(reader, 0);
      const narSize = reader.offset - start;
      if (reader.number("the export magic") !== EXPORT_MAGIC)
        throw new NotAnExport(`no export magic after the NAR ending at byte ${reader.offset - 8}`);
      const path = storePath(reader.string("a path"), "the path");
      const count = reader.number("the number of references");
      if (count > 100_000) throw new NotAnExport(`${path} claims ${count} references`);
      const references = Array.from({ length: count }, () => storePath(reader.string("a reference"), `a reference of ${path}`));
      const deriver = reader.string("a deriver");
      if (deriver !== "") storePath(deriver, `the deriver of ${path}`);
      if (reader.number("the signature flag") === 1) reader.string("a signature");
      paths.push({ path, references, narSize });
    }
    if (reader.offset !== stat.size) throw new NotAnExport(`${stat.size - reader.offset} bytes follow the end of the export`);
    if (paths.length === 0) throw new NotAnExport("it holds no store path");
    const held = new Set(paths.map((p) => p.path));
    for (const { path, references } of paths) {
      const missing = references.find((r) => !held.has(r));
      if (missing !== undefined) {
        throw new NotAnExport(
          `${path} references ${missing}, which the file does not hold (export a whole closure: nix-store --export $(nix-store -qR PATH))`,
        );
      }
    }
    return paths;
  } finally {
    closeSync(fd);
  }
}
