import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { nixString } from "../../f/nix/lib/config/nix_string.ts";
import {
  pathInputsOf,
  renderFlake,
  sourceInputsOf,
  withWorkTreeSnapshots,
  workTreeInputsOf,
} from "../../f/nix/lib/config/render.ts";
import { SetupError } from "../../f/nix/lib/core/errors.ts";
import { dirOfGitFileUrl, gitFileUrl, pathFlakeRef } from "../../f/nix/lib/nix/flake_ref.ts";
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
    const o = {
      field: "overrides[0]",
      src: "/srv/fio",
      kind: "path" as const,
      workTree: false,
      ref: null,
      attrs: {},
      optional: false,
    };
    const flake = renderFlake(template, TEMPLATE, "/srv/lib", [
      { ...o, pkg: "fio" },
      { ...o, pkg: "libbpf-tools" },
    ]);
    assert.ok(template.includes("# fio-src = {"));
    assert.deepEqual(sourceInputsOf(flake), ["fio-src", "libbpf-tools-src"]);
    assert.deepEqual(sourceInputsOf(template), []);
  });

  test("a work tree's input is its snapshot by rev, which lock_config reads back and moves", () => {
    const base = { attrs: {}, optional: false, ref: null };
    const odd = '/home/me/my "src"/fio$1 ü#?%';
    const snapshot = { rev: "a".repeat(40), submodules: true, files: 2, bytes: 10 };
    const flake = renderFlake(
      template,
      TEMPLATE,
      "/srv/lib",
      [
        { ...base, field: "overrides[0]", pkg: "fio", src: odd, kind: "git", workTree: true },
        { ...base, field: "overrides[1]", pkg: "xfsprogs", src: "/srv/a \\ b\n", kind: "path", workTree: false },
      ],
      new Map([["fio-src", snapshot]]),
    );
    assert.match(
      flake,
      /^ {4}fio-src = \{ type = "git"; url = "file:\/\/\/home\/me\/my%20%22src%22\/fio%241%20%C3%BC%23%3F%25"; rev = "a{40}"; submodules = true; flake = false; \}; # a git work tree: /m,
    );
    assert.deepEqual(workTreeInputsOf(flake), [{ input: "fio-src", dir: odd, rev: "a".repeat(40) }]);
    assert.deepEqual(pathInputsOf(flake), [{ input: "xfsprogs-src", dir: "/srv/a \\ b\n" }]);
    assert.deepEqual(sourceInputsOf(flake), ["fio-src", "xfsprogs-src"]);
    const moved = withWorkTreeSnapshots(flake, new Map([["fio-src", { ...snapshot, rev: "b".repeat(40), submodules: false }]]));
    assert.deepEqual(workTreeInputsOf(moved), [{ input: "fio-src", dir: odd, rev: "b".repeat(40) }]);
    assert.doesNotMatch(moved, /fio-src = .*submodules/);
    assert.equal(moved.replace(/fio-src = .*\n/, ""), flake.replace(/fio-src = .*\n/, ""), "nothing else changes");
    assert.equal(dirOfGitFileUrl(gitFileUrl(odd)), odd);
    assert.equal(dirOfGitFileUrl("https://example.org/fio.git"), null);
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
