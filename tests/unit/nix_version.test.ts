// Which Nix runs, from its version string (lib/nix/version.ts), and the
// command forms chosen by it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { updateInputsArgs } from "../../f/nix/lib/nix/operations.ts";
import { type NixVersion, parseNixVersion } from "../../f/nix/lib/nix/version.ts";

describe("Nix versions", () => {
  test("parses the flavours", () => {
    assert.deepEqual(parseNixVersion("nix (Nix) 2.8.0\n"), {
      flavour: "nix",
      major: 2,
      minor: 8,
      patch: 0,
      text: "nix (Nix) 2.8.0",
    });
    assert.equal(parseNixVersion("nix (Lix, like Nix) 2.93.0")?.flavour, "lix");
    assert.equal(parseNixVersion("nix (Determinate Nix 3.6.2) 2.29.0")?.flavour, "determinate");
    assert.equal(parseNixVersion("nix (Determinate Nix 3.6.2) 2.29.0")?.minor, 29);
    assert.equal(parseNixVersion("hello"), null);
  });
  test("updating inputs: --update-input before 2.19, flake update --flake from 2.19 and on Lix", () => {
    const v = (text: string) => parseNixVersion(text) as NixVersion;
    assert.deepEqual(updateInputsArgs(v("nix (Nix) 2.18.9"), "path:/d", ["a", "b"]), [
      "flake",
      "lock",
      "path:/d",
      "--update-input",
      "a",
      "--update-input",
      "b",
    ]);
    assert.deepEqual(updateInputsArgs(v("nix (Nix) 2.19.0"), "path:/d", ["a"]), ["flake", "update", "--flake", "path:/d", "a"]);
    assert.deepEqual(updateInputsArgs(v("nix (Lix, like Nix) 2.90.0"), "path:/d", ["a"]), [
      "flake",
      "update",
      "--flake",
      "path:/d",
      "a",
    ]);
    assert.deepEqual(updateInputsArgs(v("nix (Nix) 3.0.0"), "path:/d", ["a"]), ["flake", "update", "--flake", "path:/d", "a"]);
  });
});
