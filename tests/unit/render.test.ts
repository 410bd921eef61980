import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { nixString } from "../../f/nix/lib/config/nix_string.ts";
import { renderFlake, sourceInputsOf } from "../../f/nix/lib/config/render.ts";
import { SetupError } from "../../f/nix/lib/core/errors.ts";
import { pathFlakeRef } from "../../f/nix/lib/nix/flake_ref.ts";
import { GOLDEN_CASES, GOLDEN_DIR, renderCase, TEMPLATE } from "../helpers/golden_cases.ts";

describe("golden renders", () => {
  for (const c of GOLDEN_CASES) {
    test(c.name, () => {
      const { flake, defaultNix } = renderCase(c);
      assert.equal(flake, readFileSync(join(GOLDEN_DIR, c.name, "flake.nix"), "utf8"));
      assert.equal(defaultNix, readFileSync(join(GOLDEN_DIR, c.name, "default.nix"), "utf8"));
    });
  }
});

describe("flake.nix from the template", () => {
  const template = readFileSync(TEMPLATE, "utf8");

  test("changes only the library URL when there are no overrides", () => {
    const flake = renderFlake(template, TEMPLATE, "/srv/lib", []);
    assert.equal(flake, template.replace("path:/path/to/nixos-flake", "path:/srv/lib"));
  });

  test("fails loudly when the placeholder is missing or repeated", () => {
    const missing = template.replace("path:/path/to/nixos-flake", "github:x/y");
    assert.throws(
      () => renderFlake(missing, "T", "/srv/lib", []),
      (e: Error) => e instanceof SetupError && /found 0/.test(e.message),
    );
    const twice = `${template}\n# path:/path/to/nixos-flake\n`;
    assert.throws(() => renderFlake(twice, "T", "/srv/lib", []), /found 2/);
  });

  test("fails loudly when the nixpkgs.follows anchor is missing", () => {
    const noAnchor = template.replace(
      '    nixpkgs.follows = "nixos-flake/nixpkgs";',
      '  nixpkgs.follows = "nixos-flake/nixpkgs";',
    );
    assert.throws(() => renderFlake(noAnchor, "T", "/srv/lib", []), /nixpkgs\.follows.*is missing/);
  });

  test("refuses a directory a path: URL cannot carry on every Nix version", () => {
    assert.equal(pathFlakeRef("/srv/vendor/nixos-flake_2.0+x@y"), "path:/srv/vendor/nixos-flake_2.0+x@y");
    assert.throws(
      () => pathFlakeRef("/srv/my lib", "the nixos-flake library"),
      /the nixos-flake library "\/srv\/my lib" contains " "/,
    );
    assert.throws(() => pathFlakeRef("/srv/a#1"), /contains "#"/);
    assert.throws(() => pathFlakeRef('/a"b'), SetupError);
    assert.throws(() => pathFlakeRef("relative"), SetupError);
  });

  test("sourceInputsOf finds rendered inputs and skips the template's commented examples", () => {
    const o = { src: "/srv/fio", kind: "path" as const, ref: null, attrs: {}, optional: false };
    const flake = renderFlake(template, TEMPLATE, "/srv/lib", [
      { ...o, pkg: "fio" },
      { ...o, pkg: "libbpf-tools" },
    ]);
    assert.ok(template.includes("# fio-src = {"));
    assert.deepEqual(sourceInputsOf(flake), ["fio-src", "libbpf-tools-src"]);
    assert.deepEqual(sourceInputsOf(template), []);
  });
});

describe("Nix strings", () => {
  test("escapes what Nix would interpret", () => {
    assert.equal(nixString('a"b'), '"a\\"b"');
    assert.equal(nixString("a\\b"), '"a\\\\b"');
    assert.equal(nixString("${x}"), '"\\${x}"');
    assert.equal(nixString("$${x}"), '"\\$\\${x}"');
    assert.equal(nixString("a\nb\tc\rd"), '"a\\nb\\tc\\rd"');
    assert.equal(nixString("''"), "\"''\"");
    assert.equal(nixString("ünïcødé ✓"), '"ünïcødé ✓"');
  });

  test("refuses NUL, which no Nix string can hold", () => {
    assert.throws(() => nixString("a\0b"), /NUL/);
  });
});
