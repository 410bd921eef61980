// The key of an evaluation: what goes into it, and a config dir whose
// contents are not all known makes none.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { formatVmRuns } from "../../cli/output.ts";
import { configDirDigest, type EvaluatorIdentity, evaluationKey } from "../../f/nix/lib/build/evaluation_record.ts";

const root = mkdtempSync(join(tmpdir(), "nixos-closure-evaluation-"));
after(() => rmSync(root, { recursive: true, force: true }));

function configDir(name: string, files: Record<string, string> = {}): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [file, text] of Object.entries({ "flake.nix": "{ }", "default.nix": "{ }", "flake.lock": "{}", ...files }))
    writeFileSync(join(dir, file), text);
  return dir;
}

const evaluator: EvaluatorIdentity = {
  nix: { path: "/usr/bin/nix", ino: 1, size: 2, mtimeMs: 3, version: "nix (Nix) 2.26.3" },
  settings: { "eval-cache": true, "pure-eval": true },
  environment: { NIX_CONFIG: "substituters =" },
};

describe("the key of an evaluation", () => {
  test("our links and a root's lock are left out; any other file goes in; what cannot be read makes no key", () => {
    const plain = configDir("plain");
    const linked = configDir("linked", { "root.lock": "nixos-closure lock\n" });
    symlinkSync("/nix/store/00000000000000000000000000000000-x", join(linked, "result"));
    symlinkSync("/nix/store/00000000000000000000000000000001-x", join(linked, "result-previous"));
    symlinkSync("/somewhere/root", join(linked, "root"));
    const a = configDirDigest(plain);
    assert.ok("files" in a);
    assert.deepEqual(configDirDigest(linked), a);

    const extra = configDirDigest(configDir("extra", { "notes.txt": "a file someone left" }));
    assert.ok("files" in extra);
    assert.notDeepEqual(extra, a);

    const withDir = configDir("with-dir");
    mkdirSync(join(withDir, "sub"));
    assert.match((configDirDigest(withDir) as { unkeyable: string }).unkeyable, /sub in it is not a regular file/);
    const withLink = configDir("with-link");
    symlinkSync("/etc/passwd", join(withLink, "extra.nix"));
    assert.match((configDirDigest(withLink) as { unkeyable: string }).unkeyable, /extra\.nix/);
    const unlocked = configDir("unlocked");
    rmSync(join(unlocked, "flake.lock"));
    assert.match((configDirDigest(unlocked) as { unkeyable: string }).unkeyable, /no flake\.lock/);
  });

  test("every part changes it: a file, the Nix, a setting, the environment", () => {
    const digest = configDirDigest(configDir("parts"));
    assert.ok("files" in digest);
    const key = evaluationKey(digest.files, evaluator);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(evaluationKey(digest.files, { ...evaluator }), key);
    const other = configDirDigest(configDir("parts-other", { "default.nix": '{ networking.hostName = "x"; }' }));
    assert.ok("files" in other);
    const variants: [string, string][] = [
      ["a file", evaluationKey(other.files, evaluator)],
      ["the Nix version", evaluationKey(digest.files, { ...evaluator, nix: { ...evaluator.nix, version: "nix (Nix) 2.34.8" } })],
      ["the Nix binary", evaluationKey(digest.files, { ...evaluator, nix: { ...evaluator.nix, mtimeMs: 4 } })],
      ["a setting", evaluationKey(digest.files, { ...evaluator, settings: { ...evaluator.settings, "pure-eval": false } })],
      ["a new setting", evaluationKey(digest.files, { ...evaluator, settings: { ...evaluator.settings, "extra-x": "1" } })],
      ["the environment", evaluationKey(digest.files, { ...evaluator, environment: { NIX_STORE_DIR: "/other" } })],
    ];
    for (const [what, variant] of variants) assert.notEqual(variant, key, `${what} did not change the key`);
    // Nor does eval-cache, which decides whether a record is used, never what an evaluation gives.
    assert.equal(evaluationKey(digest.files, { ...evaluator, settings: { ...evaluator.settings, "eval-cache": false } }), key);
    // The order settings come in does not.
    assert.equal(evaluationKey(digest.files, { ...evaluator, settings: { "pure-eval": true, "eval-cache": true } }), key);
  });
});

describe("the table of a build of several VMs", () => {
  test("each VM: its system, evaluated, shared, unchanged or failed, and its time", () => {
    const toplevel = "/nix/store/n5q50q8l7q1m0q93mnv5vy0y2q77k630-nixos-system-unnamed-26.05.fixture";
    const text = formatVmRuns([
      { vm: "a", exitCode: 0, seconds: 2.25, result: { toplevel, evaluated: true, evaluated_by: "a" } },
      { vm: "b", exitCode: 0, seconds: 0.1, result: { toplevel, evaluated: false, evaluated_by: "a" } },
      { vm: "a2", exitCode: 0, seconds: 0.1, result: { toplevel, evaluated: false, evaluated_by: "a2" } },
      { vm: "c", exitCode: 1, seconds: 0.4, result: null },
    ]);
    assert.deepEqual(text.split("\n"), [
      "VM  system                                       evaluation       time",
      "a   n5q50q8…-nixos-system-unnamed-26.05.fixture  evaluated        2.3 s",
      "b   n5q50q8…-nixos-system-unnamed-26.05.fixture  shared (a)       0.1 s",
      "a2  n5q50q8…-nixos-system-unnamed-26.05.fixture  unchanged        0.1 s",
      "c   -                                            failed (exit 1)  0.4 s",
      "",
    ]);
  });
});
