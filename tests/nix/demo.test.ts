// `nixos-closure demo` as a newcomer runs it: the whole flow offline against
// the shipped example library and stand-in nixpkgs, in a state directory of
// its own under the temp dir (gone afterwards unless --keep), touching none
// of the user's own directories; a kept one can be built against again.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { removeTree } from "../../f/nix/lib/build/root/generations.ts";
import { testNixes } from "../helpers/nix.ts";

const BIN = join(ROOT, "dist", "nixos-closure.cjs");

for (const nix of testNixes()) {
  describe(`the demo with ${nix.version}`, () => {
    const scratch = mkdtempSync(join(tmpdir(), "nixos-closure-demo-test-"));
    // A temp dir like /tmp, readable by all (a private one is tested below).
    chmodSync(scratch, 0o755);
    after(() => removeTree(scratch));
    // A user's machine: a home, a state dir and a temp dir of its own; no worker variables, no vendored library.
    const home = join(scratch, "home");
    const temp = join(scratch, "tmp");
    mkdirSync(home);
    mkdirSync(temp);
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      TMPDIR: temp,
      XDG_STATE_HOME: join(scratch, "state"),
      NIX_BIN: nix.bin,
    };
    const demoDirs = () => readdirSync(temp).filter((name) => name.startsWith("nixos-closure-demo-"));

    test("renders, locks, builds and prepares the root of a VM, says what it is, and leaves nothing behind", () => {
      const run = spawnSync(process.execPath, [BIN, "demo", "--json"], { env, encoding: "utf8", timeout: 300_000 });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /a VM built against the EXAMPLE library and the STAND-IN nixpkgs shipped with this tool/);
      assert.match(run.stderr, /closure: \d+ paths/);
      // Its own source changes at every run: every demo builds, and shows it.
      assert.match(run.stderr, /^built \d+ derivations? in /m);
      assert.doesNotMatch(run.stderr, /Ignoring setting/, "no warning about the demo's own Nix settings");
      const result = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "");
      assert.match(result.toplevel, /^\/nix\/store\/[a-z0-9]{32}-nixos-system-demo-/);
      assert.ok(existsSync(join(result.toplevel, "boot.json")), "the system is in the store");
      assert.deepEqual(demoDirs(), [], "its state directory is removed");
      const [removed] = /^(\S+) is removed now/m.exec(run.stderr)?.slice(1) ?? [];
      assert.match(removed ?? "", new RegExp(`^${temp}/nixos-closure-demo-`));
      const named = Object.entries(result).filter(([, v]) => typeof v === "string" && v.startsWith(removed ?? "?"));
      assert.deepEqual(named, [], "the result names nothing in the directory it said is removed");
      assert.equal(typeof result.paths, "number", "what stays true is shown");
      const inHome = readdirSync(home, { recursive: true, encoding: "utf8" }).filter((p) => !/^\.cache(\/nix(\/|$)|$)/.test(p));
      assert.deepEqual(inHome, [], "nothing in the home directory but Nix's own cache");
      assert.equal(existsSync(env.XDG_STATE_HOME), false, "the user's worker dirs are not touched");
    });

    test("--keep keeps its state directory, and says how to build against its library; that works", () => {
      const run = spawnSync(process.execPath, [BIN, "demo", "--keep", "-L"], { env, encoding: "utf8", timeout: 300_000 });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /^xfsprogs-6\.13\.0> compiling libxfs$/m, "a second demo builds too, its builder's lines with -L");
      const [kept] = demoDirs();
      assert.ok(kept, "the state directory is kept");
      const stateDir = join(temp, kept);
      assert.match(
        run.stderr,
        new RegExp(`kept ${stateDir}; to build your own VMs against its example library:\\n  \\. ${stateDir}/env\\.sh\\n`),
      );
      assert.match(readFileSync(join(stateDir, "env.sh"), "utf8"), /^export NIXOS_FLAKE_DIR=/m);
      // As the operator would: source it, then build and list.
      const script = `. ${stateDir}/env.sh && "$0" "$1" build --vm-name vm2 --profile devel --json && "$0" "$1" list --json`;
      const own = spawnSync("bash", ["-c", script, process.execPath, BIN], { env, encoding: "utf8", timeout: 300_000 });
      assert.equal(own.status, 0, own.stderr);
      const [built, listed] = own.stdout
        .trim()
        .split("\n")
        .slice(-2)
        .map((line) => JSON.parse(line));
      assert.match(built.toplevel, /-nixos-system-vm2-/);
      assert.deepEqual(
        listed.map((vm: { vm_name: string; state: string }) => [vm.vm_name, vm.state]),
        [
          ["demo", "root prepared"],
          ["vm2", "built"],
        ],
      );
      assert.equal(existsSync(env.XDG_STATE_HOME), false, "the user's worker dirs are not touched");
    });

    test("a temp dir a path: flake URL cannot carry is named, and nothing is left in it", () => {
      const spaced = join(scratch, "tmp with space");
      mkdirSync(spaced);
      const run = spawnSync(process.execPath, [BIN, "demo"], {
        env: { ...env, TMPDIR: spaced },
        encoding: "utf8",
        timeout: 300_000,
      });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /the demo's state directory \(under TMPDIR\) ".*tmp with space.*" contains " "/);
      assert.deepEqual(readdirSync(spaced), []);
    });

    test("under a private temp dir it still runs, without the source directory Nix could not share", () => {
      const privateTemp = join(scratch, "private-tmp");
      mkdirSync(privateTemp, { mode: 0o700 });
      const run = spawnSync(process.execPath, [BIN, "demo"], {
        env: { ...env, TMPDIR: privateTemp },
        encoding: "utf8",
        timeout: 300_000,
      });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /private-tmp is private: the demo builds xfsprogs without a source directory of its own/);
      assert.doesNotMatch(run.stderr, /with xfsprogs from a source directory of its own/, "the opening says what it does");
      assert.deepEqual(readdirSync(privateTemp), []);
    });
  });
}
