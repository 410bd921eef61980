// Export files made byte by byte (a NAR and export writer of the test's own),
// so that what Nix would refuse only once it writes is refused by our check,
// before anything is written.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { readExportFile } from "../../f/nix/lib/build/root/export_file.ts";

const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const str = (s: string) => {
  const bytes = Buffer.from(s);
  return Buffer.concat([u64(bytes.length), bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)]);
};
const file = (contents: string) => [str("("), str("type"), str("regular"), str("contents"), str(contents), str(")")];
/** A NAR of a directory holding `names` (each a small file), in the order given. */
const narOf = (names: string[]) =>
  Buffer.concat([
    str("nix-archive-1"),
    str("("),
    str("type"),
    str("directory"),
    ...names.flatMap((name) => [str("entry"), str("("), str("name"), str(name), str("node"), ...file(name), str(")")]),
    str(")"),
  ]);
const PATH = `/nix/store/${"a".repeat(32)}-data`;
const exportOf = (names: string[]) =>
  Buffer.concat([u64(1), narOf(names), u64(0x4558494e), str(PATH), u64(0), str(""), u64(0), u64(0)]);

const scratch = mkdtempSync(join(tmpdir(), "nixos-closure-export-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const written = (name: string, bytes: Buffer) => {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
};

describe("export files", () => {
  test("a well-formed one: its path and NAR size", () => {
    const paths = readExportFile(written("good", exportOf(["a", "b", "é"])));
    assert.deepEqual(
      paths.map((p) => p.path),
      [PATH],
    );
    assert.equal(paths[0]?.narSize, narOf(["a", "b", "é"]).length);
  });

  for (const [why, names, message] of [
    ["an entry named ..", ["..", "a"], /invalid name "\.\."/],
    ["an entry named .", [".", "a"], /invalid name "\."/],
    ["an empty name", ["", "a"], /invalid name ""/],
    ["a name with a slash", ["a/b"], /invalid name "a\/b"/],
    ["a repeated name", ["a", "a"], /not sorted or repeat a name \("a"\)/],
    ["names out of order", ["b", "a"], /not sorted or repeat a name \("a"\)/],
  ] as const) {
    test(`refused before anything is written: ${why}`, () => {
      assert.throws(() => readExportFile(written(why.replaceAll(" ", "-"), exportOf([...names]))), message);
    });
  }
});
