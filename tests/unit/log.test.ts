// Commands as the log shows them (lib/core/log.ts): pasteable into bash,
// and cut short where a whole closure would flood a terminal.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { shellCommand, shellQuote, shortCommand, streamLogger, type Verbosity } from "../../f/nix/lib/core/log.ts";

describe("copy-pasteable commands", () => {
  test("quotes only what bash would misread", () => {
    assert.equal(shellQuote("path:/a/b"), "path:/a/b");
    assert.equal(shellQuote("path:/a#toplevel"), "'path:/a#toplevel'");
    assert.equal(shellQuote("nix-command flakes"), "'nix-command flakes'");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote(""), "''");
    assert.equal(shellCommand(["nix", "build"], { NO_COLOR: "1" }), "NO_COLOR=1 nix build");
  });

  test("a whole closure on a command line is cut at the normal level, printed whole with -v and in a job log", () => {
    const paths = Array.from({ length: 2000 }, (_, i) => `/nix/store/${String(i).padStart(32, "a")}-p${i}`);
    const argv = ["nix-store", "--dump-db", ...paths];
    assert.equal(
      shortCommand(argv),
      `nix-store --dump-db ${paths.slice(0, 4).join(" ")} ... (and 1996 more store paths: -v prints the whole command)`,
    );
    assert.equal(shortCommand(argv.slice(0, 7)), shellCommand(argv.slice(0, 7)), "a few paths are printed as they are");
    const printed = (verbosity: Verbosity) => {
      const out: string[] = [];
      streamLogger({ write: (t: string) => out.push(t), isTTY: false }, { verbosity }).command(argv);
      return out.join("");
    };
    assert.equal(printed("normal"), `+ ${shortCommand(argv)}\n`);
    assert.equal(printed("verbose"), `+ ${shellCommand(argv)}\n`);
  });
});
