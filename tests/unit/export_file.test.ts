// Export files made byte by byte (a NAR and export writer of the test's own),
// so that what Nix would refuse only once it writes is refused by our check,
// before anything is written.
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { type ExportedPath, NotAnExport, readExportFile } from "../../f/nix/lib/build/root/export_file.ts";
import {
  directory,
  entry,
  exported,
  exportFile,
  file,
  nar,
  narOf,
  storePath,
  str,
  symlink,
  u64,
} from "../helpers/export_writer.ts";

const linkNar = (target: string) => nar(symlink(target));
const PATH = storePath("a", "data");
const exportOf = (names: string[]) => exportFile(exported(narOf(names), PATH));

const scratch = mkdtempSync(join(tmpdir(), "nixos-closure-export-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let files = 0;
/** Writes `bytes` and reads them back as an export, through a descriptor (as prepare_root does). */
const read = (bytes: Buffer): ExportedPath[] => {
  const path = join(scratch, `export-${files++}`);
  writeFileSync(path, bytes);
  const fd = openSync(path, "r");
  try {
    return readExportFile(fd);
  } finally {
    closeSync(fd);
  }
};

describe("export files", () => {
  test("a well-formed one: its path, NAR size and longest path", () => {
    const paths = read(exportOf(["a", "b", "é"]));
    assert.deepEqual(
      paths.map((p) => p.path),
      [PATH],
    );
    assert.equal(paths[0]?.narSize, narOf(["a", "b", "é"]).length);
    assert.equal(paths[0]?.longestPath, `${PATH}/é`.length + 1, "in bytes: é takes two");
  });

  test("a path may refer to itself and to those before it, as nix-store --export writes them", () => {
    const leaf = storePath("b", "leaf");
    const top = storePath("c", "top");
    const paths = read(Buffer.concat([exported(narOf(["x"]), leaf), exported(narOf(["y"]), top, [leaf, top]), u64(0)]));
    assert.deepEqual(
      paths.map((p) => [p.path, p.references]),
      [
        [leaf, []],
        [top, [leaf, top]],
      ],
    );
  });

  for (const [why, names, message] of [
    ["an entry named ..", ["..", "a"], /entry name at byte \d+ is not a file name/],
    ["an entry named .", [".", "a"], /entry name at byte \d+ is not a file name/],
    ["an empty name", ["", "a"], /entry name at byte \d+ is not a file name/],
    ["a name with a slash", ["a/b"], /entry name at byte \d+ is not a file name/],
    ["a name longer than a file system takes", ["n".repeat(256)], /longer than the 255 bytes a file name may have/],
    ["a repeated name", ["a", "a"], /not sorted or repeat a name \(the entry at byte \d+\)/],
    ["names out of order", ["b", "a"], /not sorted or repeat a name/],
  ] as const) {
    test(`refused before anything is written: ${why}`, () => {
      assert.throws(() => read(exportOf([...names])), message);
    });
  }

  // Each of these Nix 2.8 or 2.26 refuses only once it has written files into the store (or the import fails half way).
  const leaf = storePath("b", "leaf");
  for (const [why, bytes, message] of [
    ["a path named ..", exported(narOf(["x"]), storePath("d", "..")), /path 1 at byte \d+ is not a store path Nix takes/],
    ["a path named .-x", exported(narOf(["x"]), storePath("d", ".-x")), /path 1 at byte \d+ is not a store path Nix takes/],
    ["a name of 212 characters", exported(narOf(["x"]), storePath("d", "n".repeat(212))), /at most 211 characters/],
    ["a deriver named ..", exported(narOf(["x"]), PATH, [], storePath("g", "..")), /the deriver of path 1 at byte \d+ is not/],
    [
      "references out of order",
      Buffer.concat([exported(narOf(["x"]), storePath("c", "top"), [leaf]), exported(narOf(["y"]), leaf)]),
      /path 1 references a path the file does not hold before it/,
    ],
    [
      "a path twice",
      Buffer.concat([exported(narOf(["x"]), PATH), exported(narOf(["y"]), PATH)]),
      /path 2 \(before byte \d+\) is one the file held already/,
    ],
    ["an empty symlink target", exported(linkNar(""), PATH), /symlink target at byte \d+ is empty, too long/],
    [
      "a symlink target longer than a path",
      exported(linkNar("x".repeat(4096)), PATH),
      /symlink target at byte \d+ is empty, too long/,
    ],
  ] as const) {
    test(`refused before anything is written: ${why}`, () => {
      assert.throws(
        () => read(Buffer.concat([bytes, u64(0)])),
        (e: Error) => e instanceof NotAnExport && message.test(e.message),
      );
    });
  }

  test("a 211-character name, a name starting with dots and a 255-byte entry are taken, as Nix takes them", () => {
    const paths = read(
      Buffer.concat([
        exported(narOf(["n".repeat(255)]), storePath("d", "n".repeat(211))),
        exported(narOf(["x"]), storePath("g", "...-..")),
        exported(narOf(["x"]), storePath("f", ".config")),
        u64(0),
      ]),
    );
    assert.equal(paths.length, 3);
  });

  test("no message quotes what the file holds: only where, and what was expected", () => {
    const secret = "PRIVATE-KEY-MATERIAL-0123456789";
    const cases = [
      Buffer.from(`${secret}\n${secret}\n`),
      Buffer.concat([u64(0x2020202020202020n), str(secret)]),
      Buffer.concat([u64(1), str(secret)]),
      Buffer.concat([u64(1), str("nix-archive-1"), str("("), str("type"), str(secret)]),
      Buffer.concat([u64(1), str("nix-archive-1"), str("("), str("type"), str("regular"), str(secret)]),
      Buffer.concat([u64(1), str("nix-archive-1"), ...directory([entry("a", file("x")), [str(secret)]])]),
      Buffer.concat([u64(1), narOf(["x"]), u64(0x4558494e), str(`/nix/store/${secret}`), u64(0)]),
      Buffer.concat([exported(narOf(["x"]), PATH, [`/nix/store/${"b".repeat(32)}-${secret}`]), u64(0)]),
      Buffer.concat([u64(1), narOf([secret, "a"])]),
    ];
    for (const bytes of cases) {
      assert.throws(
        () => read(bytes),
        (e: Error) => {
          assert.ok(e instanceof NotAnExport, String(e));
          for (const fragment of [secret, secret.slice(0, 8), "2314885530818453536", "PRIVATE"])
            assert.ok(!e.message.includes(fragment), e.message);
          return true;
        },
      );
    }
  });
});
