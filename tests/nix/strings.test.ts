// Property: any string, however hostile, reaches Nix unchanged. Random
// GuestConfigs (bypassing validation, so nothing is filtered out) are rendered
// and read back with the real `nix eval`.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { EXAMPLES_DIR } from "../../cli/examples.ts";
import type { GuestConfig, SourceOverride } from "../../f/nix/lib/config/model.ts";
import { renderDefault, renderFlake } from "../../f/nix/lib/config/render.ts";
import { nixSync, testNixes } from "../helpers/nix.ts";

const TEMPLATE = join(EXAMPLES_DIR, "nixos-flake", "templates", "imageless", "flake.nix");
const READBACK = join(import.meta.dirname, "readback.nix");
const LIB = join(EXAMPLES_DIR, "nixpkgs", "lib");

const hostile = fc.constantFrom(
  '"',
  "\\",
  "${",
  "$",
  "''",
  "'''",
  "''${",
  "\\${",
  "$${",
  "\n",
  "\r",
  "\t",
  "\r\n",
  "\x01",
  "\x1b[31m",
  "\x7f",
  "é",
  "🦀",
  "\u2028",
  "#",
  "*/",
  "/*",
);
/** Any text but NUL (which no Nix string can hold), with hostile fragments mixed in. */
const text = fc
  .array(fc.oneof(hostile, fc.string({ unit: "binary", maxLength: 6 })), { maxLength: 8 })
  .map((parts) => parts.join("").replaceAll("\0", ""));
const nonEmpty = text.filter((t) => t !== "");
const identifier = fc
  .stringMatching(/^[a-z][a-zA-Z0-9_]{0,8}$/)
  .filter((n) => !["if", "in", "or", "let", "rec", "then", "else", "with", "assert", "inherit", "src"].includes(n));

const override = fc.record({
  field: fc.constant("overrides[0]"),
  workTree: fc.constant(false),
  pkg: fc.stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/).filter((n) => !["if", "in", "or", "let", "rec"].includes(n)),
  src: nonEmpty,
  kind: fc.constantFrom<SourceOverride["kind"]>("path", "git"),
  ref: fc.option(nonEmpty, { nil: null }),
  attrs: fc.dictionary(identifier, text, { maxKeys: 3 }),
  optional: fc.boolean(),
});

const guest: fc.Arbitrary<GuestConfig> = fc.record({
  vmName: text,
  hostnameAtBoot: fc.constant(false),
  userName: nonEmpty,
  profiles: fc.subarray(["build-tools", "controller", "devel", "monitoring"] as const),
  testSuites: fc.subarray(["fstests", "ltp"] as const),
  sshKeys: fc.array(text, { maxLength: 3 }),
  shares: fc
    .array(fc.tuple(nonEmpty, fc.record({ tag: text, options: fc.array(text, { maxLength: 3 }) })), { maxLength: 3 })
    .map((entries) => new Map(entries)),
  rootHome: fc.option(text, { nil: null }),
  overrides: fc
    .uniqueArray(override, { selector: (o) => o.pkg, maxLength: 3 })
    .map((os) => os.map((o) => (o.kind === "path" ? { ...o, ref: null } : o))),
  warnings: fc.constant([]),
});

for (const nix of testNixes()) {
  describe(`strings reach Nix unchanged (${nix.version})`, () => {
    test("random and hostile strings in every string input read back exactly", () => {
      const dir = mkdtempSync(join(tmpdir(), "nixos-closure-strings-"));
      const template = readFileSync(TEMPLATE, "utf8");
      try {
        fc.assert(
          fc.property(guest, fc.stringMatching(/^[A-Za-z0-9._~+@,=-]{1,12}$/), (g, libraryTail) => {
            const library = `/srv/${libraryTail}`;
            writeFileSync(join(dir, "flake.nix"), renderFlake(template, TEMPLATE, library, g.overrides));
            writeFileSync(join(dir, "default.nix"), renderDefault(g));
            const out = nixSync(nix, [
              "eval",
              "--impure",
              "--json",
              "--expr",
              `import ${READBACK} { dir = ${JSON.stringify(dir)}; lib = import ${LIB}; }`,
            ]);
            const back = JSON.parse(out);
            assert.equal(back.hostName, g.vmName);
            assert.equal(back.userName, g.userName);
            assert.equal(back.rootHome, g.rootHome);
            const keys = g.sshKeys.length > 0 ? g.sshKeys : [];
            assert.deepEqual(back.rootKeys, keys);
            assert.deepEqual(back.userKeys, keys.length > 0 ? { [g.userName]: keys } : {});
            assert.deepEqual(
              back.shares,
              Object.fromEntries(
                [...g.shares].map(([point, s]) => [
                  point,
                  s.options.length > 0 ? { tag: s.tag, options: s.options } : { tag: s.tag },
                ]),
              ),
            );
            assert.deepEqual(
              back.overrides,
              Object.fromEntries(g.overrides.map((o) => [o.pkg, { src: `input:${o.pkg}-src`, ...o.attrs }])),
            );
            assert.deepEqual(
              back.srcInputs,
              Object.fromEntries(
                g.overrides.map((o) => [
                  `${o.pkg}-src`,
                  o.kind === "path"
                    ? { type: "path", path: o.src, flake: false }
                    : { type: "git", url: o.src, ...(o.ref === null ? {} : { ref: o.ref }), submodules: true, flake: false },
                ]),
              ),
            );
            assert.equal(back.libraryUrl, `path:${library}`);
          }),
          { numRuns: Number(process.env.NIXOS_CLOSURE_PROPERTY_RUNS ?? 40) },
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
