// Files we write (lib/core/files.ts): caches marked as ours, and atomic
// writes that leave an unchanged file alone.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { isOursOrFree, readCache, readIfExists, writeCache, writeFileAtomic } from "../../f/nix/lib/core/files.ts";

describe("caches and atomic writes", () => {
  test("a cache file that is missing, garbled, not a file or not ours reads as no cache, and only ours is replaced", () => {
    const dir = mkdtempSync(join(tmpdir(), "cache-"));
    try {
      assert.equal(readCache(join(dir, "missing.json")), null);
      writeFileSync(join(dir, "garbled.json"), '{"key": "ab');
      assert.equal(readCache(join(dir, "garbled.json")), null);
      mkdirSync(join(dir, "dir.json"));
      assert.equal(readCache(join(dir, "dir.json")), null);
      // Not ours (no mark): neither read, nor replaced, nor removed.
      writeFileSync(join(dir, "foreign.json"), '{"key":"ab"}\n');
      assert.equal(readCache(join(dir, "foreign.json")), null);
      assert.equal(isOursOrFree(join(dir, "foreign.json")), false);
      assert.equal(writeCache(join(dir, "foreign.json"), { key: "cd" }), false);
      assert.equal(readFileSync(join(dir, "foreign.json"), "utf8"), '{"key":"ab"}\n');
      assert.equal(writeCache(join(dir, "good.json"), { key: "ab" }), true);
      assert.deepEqual(readCache(join(dir, "good.json")), { by: "nixos-closure", key: "ab" });
      assert.equal(isOursOrFree(join(dir, "good.json")), true);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("atomic writes skip unchanged content", () => {
    const dir = mkdtempSync(join(tmpdir(), "files-"));
    try {
      const f = join(dir, "a");
      assert.equal(readIfExists(f), null);
      assert.equal(writeFileAtomic(f, "x"), true);
      assert.equal(writeFileAtomic(f, "x"), false);
      assert.equal(writeFileAtomic(f, "y"), true);
      assert.equal(readIfExists(f), "y");
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
