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
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { readBootInfo } from "../../f/nix/lib/build/bootspec.ts";
import { removeTree } from "../../f/nix/lib/build/root/generations.ts";
import { SetupError } from "../../f/nix/lib/core/errors.ts";
import { FileRefused, openFile, privatePath, readSmallFile } from "../../f/nix/lib/core/files.ts";
import { waitFor } from "../helpers/steps.ts";

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
    const racer = `const { mkdirSync, renameSync, symlinkSync, writeFileSync } = require("node:fs");
      mkdirSync(process.argv[1] + "/own");
      process.chdir(process.argv[1] + "/own");
      const names = Array.from({ length: 16 }, (_, i) => "d" + i);
      for (const n of names) { mkdirSync(n + "/x/y", { recursive: true }); symlinkSync(process.argv[2], n + ".l"); }
      writeFileSync("racing", "");
      for (;;) for (const n of names) {
        try { renameSync(n, n + ".d"); renameSync(n + ".l", n); renameSync(n, n + ".l"); renameSync(n + ".d", n); } catch {}
      }`;
    let failures = 0;
    for (let round = 0; round < 40; round++) {
      const gen = join(scratch, `race-gen-${round}`);
      const tmp = generation(gen);
      const child = spawn("setpriv", [...NOBODY, "--", process.execPath, "-e", racer, tmp, secret.file], { stdio: "ignore" });
      await waitFor(
        10_000,
        "the racer to start trading places",
        () => existsSync(join(tmp, "own", "racing")),
        () => child.kill("SIGKILL"),
      );
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

/**
 * What `call` (an expression on `files` and `bootspec`, the modules) throws, run in a child process that is killed
 * after 10 seconds: a read that waited on a FIFO would block this process for good, its timers with it.
 */
function thrownInChild(call: string): string {
  const script = `import * as files from ${JSON.stringify(join(ROOT, "f/nix/lib/core/files.ts"))};
    import * as bootspec from ${JSON.stringify(join(ROOT, "f/nix/lib/build/bootspec.ts"))};
    try { ${call}; console.log("no error"); } catch (e) { console.log(e.name + ": " + e.message); }`;
  const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 10_000,
  });
  assert.equal(run.signal, null, `${call} did not return within 10 s`);
  return run.stdout.trim();
}

describe("reading a file we did not write", () => {
  const fifo = join(scratch, "fifo");
  execFileSync("mkfifo", [fifo]);
  chmodSync(fifo, 0o666);

  test("a FIFO, a link to one, a device are refused at once, never opened for reading", () => {
    const link = join(scratch, "to-fifo");
    symlinkSync(fifo, link);
    for (const [path, kind] of [
      [fifo, "a FIFO"],
      [link, "a FIFO"],
      ["/dev/null", "a device"],
      [scratch, "a directory"],
    ]) {
      assert.equal(
        thrownInChild(`files.readSmallFile(${JSON.stringify(path)}, 1024)`),
        `SetupError: ${path} is not a regular file (it is ${kind})`,
      );
      assert.equal(
        thrownInChild(`files.readIfExists(${JSON.stringify(path)})`),
        `SetupError: ${path} is not a regular file (it is ${kind})`,
      );
    }
    assert.throws(() => openFile(link, { follow: false }), /is not a regular file \(it is a symbolic link\)/);
  });

  test("a link that leads out of where the file must be is refused, naming where it leads, never what it holds", () => {
    const secret = secrets("outside");
    const store = join(scratch, "store");
    mkdirSync(join(store, "sys"), { recursive: true });
    symlinkSync(secret.file, join(store, "sys", "boot.json"));
    assert.throws(
      () => readSmallFile(join(store, "sys", "boot.json"), 1024, { within: store }),
      (e: Error) =>
        e instanceof FileRefused && e.reason === `leads to ${secret.file}, outside ${store}, the only place it is read from`,
    );
    // Within the store, a link to another of its files is fine.
    writeFileSync(join(store, "sys", "real.json"), "{}");
    symlinkSync("real.json", join(store, "sys", "alias.json"));
    assert.equal(readSmallFile(join(store, "sys", "alias.json"), 1024, { within: store }), "{}");
  });

  test("a bootspec that links to a FIFO or a private file fails at once, quoting nothing", () => {
    const secret = secrets("bootspec");
    const store = join(scratch, "boot-store");
    for (const [name, target] of [
      ["to-fifo", fifo],
      ["to-secret", secret.file],
    ]) {
      const system = join(store, `sys-${name}`);
      mkdirSync(system, { recursive: true });
      writeFileSync(join(system, "init"), "#!/bin/sh\n");
      symlinkSync(target as string, join(system, "boot.json"));
      assert.equal(
        thrownInChild(`bootspec.readBootInfo(${JSON.stringify(system)})`),
        `SetupError: ${system}/boot.json leads to ${target}, outside ${store}, the only place it is read from; the bootspec cannot be read`,
      );
    }
    // Inside the store, a file that is not JSON: named, its text never shown (JSON.parse would quote it).
    const system = join(store, "sys-garbage");
    mkdirSync(system);
    writeFileSync(join(system, "boot.json"), "PRIVATE-KEY-MATERIAL");
    assert.throws(
      () => readBootInfo(system),
      (e: Error) => e instanceof SetupError && e.message === `${system}/boot.json is not valid JSON; the bootspec cannot be read`,
    );
  });
});

describe("a source Nix copies into the store", () => {
  test("a link is checked where it leads: its target's directories and tree, as Nix copies them", () => {
    const base = join(scratch, "sources");
    mkdirSync(join(base, "private", "fio"), { recursive: true });
    chmodSync(join(base, "private"), 0o700);
    writeFileSync(join(base, "private", "fio", "README"), "readable, under a private directory\n");
    mkdirSync(join(base, "public", "fio"), { recursive: true });
    mkdirSync(join(base, "readable"));
    symlinkSync(join(base, "private", "fio"), join(base, "readable", "to-private"));
    symlinkSync(join(base, "public", "fio"), join(base, "readable", "to-public"));
    assert.equal(privatePath(join(base, "readable", "to-private")), join(base, "private"));
    assert.equal(privatePath(join(base, "readable", "to-public")), null);
  });
});
