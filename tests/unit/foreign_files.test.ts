// Files and trees we did not make, met the way a second local user would
// lay them out: links swapped in while we work, FIFOs, devices, private
// files behind links. Nothing is followed out, waited on, or quoted.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { removeTree } from "../../f/nix/lib/build/root/generations.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
/** The second local user of these tests: nobody, who owns nothing here. */
const NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"];

const scratch = mkdtempSync(join(tmpdir(), "nixos-closure-foreign-"));
chmodSync(scratch, 0o755);
after(() => rmSync(scratch, { recursive: true, force: true }));

const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8);

/** A root-only file and directory: what a hostile user would like made readable. */
function secrets(name: string): { file: string; dir: string } {
  const dir = join(scratch, `${name}-private`);
  mkdirSync(dir, { mode: 0o700 });
  const file = join(dir, "key");
  writeFileSync(file, "PRIVATE-KEY-MATERIAL\n", { mode: 0o600 });
  return { file, dir };
}

/** A generation as prepare_root leaves it: read-only store directories and a world-writable tmp/. */
function generation(path: string): string {
  mkdirSync(join(path, "nix", "store", "x-pkg", "bin"), { recursive: true });
  writeFileSync(join(path, "nix", "store", "x-pkg", "bin", "tool"), "#!/bin/sh\n");
  chmodSync(join(path, "nix", "store", "x-pkg", "bin"), 0o555);
  chmodSync(join(path, "nix", "store", "x-pkg"), 0o555);
  mkdirSync(join(path, "tmp"));
  chmodSync(join(path, "tmp"), 0o1777);
  return join(path, "tmp");
}

describe("removing a tree others could write into", () => {
  test("links planted in tmp/ are removed, never followed", () => {
    const secret = secrets("planted");
    const gen = join(scratch, "planted-gen");
    const tmp = generation(gen);
    for (const [name, target] of [
      ["file-link", secret.file],
      ["dir-link", secret.dir],
    ]) {
      execFileSync("setpriv", [...NOBODY, "--", "ln", "-s", target as string, join(tmp, name as string)]);
    }
    execFileSync("setpriv", [...NOBODY, "--", "mkdir", "-p", join(tmp, "theirs", "deep")]);
    execFileSync("setpriv", [...NOBODY, "--", "ln", "-s", secret.dir, join(tmp, "theirs", "deep", "up")]);
    removeTree(gen);
    assert.equal(existsSync(gen), false);
    assert.equal(mode(secret.file), "600");
    assert.equal(mode(secret.dir), "700");
    assert.equal(readFileSync(secret.file, "utf8"), "PRIVATE-KEY-MATERIAL\n");
  });

  test("a user swapping directories for links while it runs never gets a file chmodded or removed", async () => {
    const secret = secrets("race");
    // The racer, as nobody: in a directory of its own in tmp/ (which stays its to write, whatever mode tmp/ is given),
    // directories that keep trading places with links to the secret file.
    const racer = `const { mkdirSync, renameSync, symlinkSync } = require("node:fs");
      mkdirSync(process.argv[1] + "/own");
      process.chdir(process.argv[1] + "/own");
      const names = Array.from({ length: 16 }, (_, i) => "d" + i);
      for (const n of names) { mkdirSync(n + "/x/y", { recursive: true }); symlinkSync(process.argv[2], n + ".l"); }
      for (;;) for (const n of names) {
        try { renameSync(n, n + ".d"); renameSync(n + ".l", n); renameSync(n, n + ".l"); renameSync(n + ".d", n); } catch {}
      }`;
    let failures = 0;
    for (let round = 0; round < 40; round++) {
      const gen = join(scratch, `race-gen-${round}`);
      const tmp = generation(gen);
      const child = spawn("setpriv", [...NOBODY, "--", process.execPath, "-e", racer, tmp, secret.file], { stdio: "ignore" });
      await new Promise((r) => setTimeout(r, 150));
      try {
        removeTree(gen);
      } catch (error) {
        // The racer may refill a directory faster than it is emptied: that fails the removal, and changes nothing else.
        failures++;
        assert.ok(
          ["ENOTEMPTY", "ENOTDIR", "ELOOP", "EACCES", "ENOENT"].includes((error as NodeJS.ErrnoException).code ?? ""),
          String(error),
        );
      }
      child.kill("SIGKILL");
      await new Promise((r) => child.on("exit", r));
      removeTree(gen);
      assert.equal(existsSync(gen), false);
      assert.equal(mode(secret.file), "600", `round ${round}`);
      assert.equal(mode(secret.dir), "700", `round ${round}`);
      assert.equal(readFileSync(secret.file, "utf8"), "PRIVATE-KEY-MATERIAL\n");
    }
    assert.ok(failures < 40, "most removals complete even while the racer runs");
  });

  test("a user that is not root removes its own read-only tree (store directories) through descriptors", () => {
    const gen = join(scratch, "nobody-gen");
    mkdirSync(gen);
    chownSync(gen, 65534, 65534);
    const script = `import { removeTree } from ${JSON.stringify(join(ROOT, "f/nix/lib/build/root/generations.ts"))};
      import { mkdirSync, writeFileSync, chmodSync } from "node:fs";
      const g = ${JSON.stringify(join(gen, "1"))};
      mkdirSync(g + "/nix/store/p/d", { recursive: true }); writeFileSync(g + "/nix/store/p/d/f", "x");
      for (const d of ["/nix/store/p/d", "/nix/store/p", "/nix/store"]) chmodSync(g + d, 0o555);
      removeTree(g);`;
    const run = spawnSync(
      "setpriv",
      [...NOBODY, "--", process.execPath, "--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, HOME: "/nonexistent" },
      },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(existsSync(join(gen, "1")), false);
  });
});
