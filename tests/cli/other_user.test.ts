// A developer's own trees under a private home (0700, as Debian and Fedora
// make homes), run by that developer: nixos-closure publishes them with one
// warning each; root given the same trees, or the developer given another
// user's private file, is refused. A second local user (made with useradd)
// runs the CLI through setpriv, with a Nix store of their own (without a
// daemon, only root writes /nix/store): render and lock, the steps that copy
// sources into a store.
import assert from "node:assert/strict";
import { execFileSync, type SpawnSyncReturns, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { installExamples } from "../../cli/examples.ts";
import { ROOT } from "../../cli/flow.ts";
import { sourcePathOf } from "../../f/nix/lib/nix/store_path.ts";
import { TEST_NIX_CONFIG, testNixes } from "../helpers/nix.ts";
import { baseEnv } from "../helpers/workbench.ts";

const BIN = join(ROOT, "dist", "nixos-closure.cjs");
const USER = "nixos-closure-dev";
const asRoot = process.getuid?.() === 0;

/**
 * The second user, made once: uid, gid and a home only they may read. Another
 * run of the suite may be making them at the same moment: useradd then finds
 * them made (exit 9) or /etc/passwd locked (exit 10), or their home is not
 * there yet, and we look again.
 */
function developer(): { uid: string; gid: string; home: string } {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const entry = spawnSync("getent", ["passwd", USER], { encoding: "utf8" });
    const [, , uid = "", gid = "", , home = ""] = entry.stdout.trim().split(":");
    if (entry.status === 0 && existsSync(home)) {
      chmodSync(home, 0o700);
      return { uid, gid, home };
    }
    if (entry.status !== 0) {
      const made = spawnSync("useradd", ["--create-home", "--shell", "/bin/sh", USER], { encoding: "utf8" });
      if (made.status !== 0 && ![9, 10].includes(made.status ?? -1)) throw new Error(`useradd ${USER}: ${made.stderr}`);
    }
    if (Date.now() > deadline) throw new Error(`${USER} was not made with a home in 30 s`);
    spawnSync("sleep", ["0.1"]);
  }
}

for (const nix of asRoot ? testNixes() : []) {
  describe(`a private home, with ${nix.version}`, () => {
    test("the developer's own work tree and library build with one warning each; root, and someone else's private file, are refused", () => {
      const dev = developer();
      const dir = join(dev.home, `test-${process.pid}-${nix.bin.replaceAll("/", "_")}`);
      const rootState = mkdtempSync(join(tmpdir(), "nixos-closure-root-state-"));
      try {
        const { libraryDir } = installExamples(join(dir, "vendor"));
        const src = join(dir, "src", "xfsprogs");
        mkdirSync(join(src, "build"), { recursive: true });
        writeFileSync(join(src, "main.c"), "int main(void) { return 0; }\n");
        const git = (...args: string[]) =>
          execFileSync("git", ["-C", src, "-c", "user.name=dev", "-c", "user.email=dev@nixos-closure.invalid", ...args]);
        git("init", "-q");
        git("add", "main.c");
        git("commit", "-qm", "xfsprogs");
        writeFileSync(join(src, "main.c"), "int main(void) { return 1; }\n");
        writeFileSync(join(src, "build", "main.o"), "host-built\n");
        execFileSync("chown", ["-R", `${dev.uid}:${dev.gid}`, dir]);

        const env = {
          ...baseEnv(),
          HOME: dev.home,
          XDG_STATE_HOME: join(dir, "state"),
          NIX_BIN: nix.bin,
          NIX_CONFIG: `${TEST_NIX_CONFIG}\nstore = ${join(dir, "store")}`,
        };
        const run = (argv: string[], as: "developer" | "root"): SpawnSyncReturns<string> =>
          as === "root"
            ? // Root's state in a place of root's: a worker directory in another user's home is refused (they could redirect it).
              spawnSync(process.execPath, argv, { env: { ...env, XDG_STATE_HOME: rootState }, encoding: "utf8" })
            : spawnSync("setpriv", ["--reuid", dev.uid, "--regid", dev.gid, "--init-groups", process.execPath, ...argv], {
                env,
                encoding: "utf8",
              });
        // The library pins its stand-in nixpkgs, locked in the developer's store.
        const libraryLock = spawnSync(
          "setpriv",
          ["--reuid", dev.uid, "--regid", dev.gid, "--init-groups", join(nix.bin, "nix"), "flake", "lock", `path:${libraryDir}`],
          { env, encoding: "utf8" },
        );
        assert.equal(libraryLock.status, 0, libraryLock.stderr);

        const args = ["--vm-name", "home-vm", "--profile", "devel", "--test-suite", "fstests"];
        const rendered = run([BIN, "render", ...args, "--override", `xfsprogs=${src}`, "--nixos-flake", libraryDir], "developer");
        assert.equal(rendered.status, 0, rendered.stderr);
        const warnings = rendered.stderr.split("\n").filter((line) => line.includes("becomes readable by every user"));
        assert.deepEqual(warnings, [
          `warning: the nixos-flake library: the copy of ${libraryDir} becomes readable by every user of this machine in /nix/store, though only you may read ${dev.home}`,
          `warning: override xfsprogs: the copy of the files git tracks in ${src} becomes readable by every user of this machine in /nix/store, though only you may read ${dev.home}`,
        ]);
        const lock = run([BIN, "lock", "--vm-name", "home-vm"], "developer");
        assert.equal(lock.status, 0, lock.stderr);
        assert.doesNotMatch(lock.stderr, /becomes readable/, "said once, at render");
        const configDir = join(dir, "state", "nixos-closure", "workers", "0", "nix", "home-vm");
        const nodes = JSON.parse(readFileSync(join(configDir, "flake.lock"), "utf8")).nodes;
        const source = sourcePathOf(nodes["xfsprogs-src"].locked.narHash) ?? "";
        const copied = join(dir, "store", source);
        assert.deepEqual(readdirSync(copied), ["main.c"], "the tracked file, in the developer's store; not build/");
        assert.equal(readFileSync(join(copied, "main.c"), "utf8"), "int main(void) { return 1; }\n");

        // Root may not publish what the developer keeps private: the override, and the library alone.
        const byRoot = run([BIN, "render", ...args, "--override", `xfsprogs=${src}`, "--nixos-flake", libraryDir], "root");
        assert.equal(byRoot.status, 2, byRoot.stderr);
        assert.match(
          byRoot.stderr,
          new RegExp(`--override \\(overrides\\[0\\]\\.src\\): .* holds ${dev.home}, which only its owner may read`),
        );
        const libraryByRoot = run([BIN, "render", ...args, "--nixos-flake", libraryDir], "root");
        assert.equal(libraryByRoot.status, 2, libraryByRoot.stderr);
        assert.match(libraryByRoot.stderr, new RegExp(`--nixos-flake: .* names ${dev.home}, which only its owner may read`));

        // Nor may the developer publish a private file that is not theirs.
        writeFileSync(join(src, "build", "root-only"), "secret\n", { mode: 0o600 });
        const foreign = run(
          [BIN, "render", ...args, "--override", `xfsprogs=path:${src}`, "--nixos-flake", libraryDir],
          "developer",
        );
        assert.equal(foreign.status, 2, foreign.stderr);
        assert.match(foreign.stderr, /holds .*\/build\/root-only, which only its owner may read/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
        rmSync(rootState, { recursive: true, force: true });
      }
    });
  });
}
