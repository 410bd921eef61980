// prepare_root in full, with the real nix: extra closures from the store,
// closures that arrive as `nix-store --export` files (from a store this host
// never had), a channel, the whole layout of nixos-prepare-root, and a root
// built by Nix as a store path, the same on every Nix version.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { removeTree } from "../../f/nix/lib/build/root/generations.ts";
import { InputError, SetupError } from "../../f/nix/lib/core/errors.ts";
import { readIfExists } from "../../f/nix/lib/core/files.ts";
import type { BuildClosureResult } from "../../f/nix/lib/steps/building.ts";
import type { PrepareRootResult } from "../../f/nix/lib/steps/root_preparation.ts";
import type { RootFields } from "../../f/nix/lib/steps/root_request.ts";
import { lockHolderOf, withDirLock } from "../../f/nix/lib/worker/dir_lock.ts";
import { directory, entry, exported, exportFile, file, nar, narOf, storePath, str, u64 } from "../helpers/export_writer.ts";
import { nixSync, ownName, processesOf, TEST_NIX_CONFIG, type TestNix, testNixes } from "../helpers/nix.ts";
import { captureLog, lockHolder, vmSteps, waitFor, within } from "../helpers/steps.ts";
import { createWorkbench, snapshot, useWorkbench, type Workbench } from "../helpers/workbench.ts";

const closureOf = (nix: TestNix, ...paths: string[]): string[] =>
  nixSync(nix, ["path-info", "--recursive", ...paths])
    .trim()
    .split("\n")
    .sort();

const validPaths = (nix: TestNix, root: string): string[] =>
  nixSync(nix, ["path-info", "--store", `local?root=${root}`, "--all"])
    .trim()
    .split("\n")
    .sort();

function verifyClean(nix: TestNix, root: string): void {
  const verify = nixSync(nix, ["store", "verify", "--no-trust", "--store", `local?root=${root}`, "--all"]);
  assert.doesNotMatch(verify, /corrupt|invalid|modified|error/i);
}

const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8);
const union = (...lists: string[][]) => [...new Set(lists.flat())].sort();

/** A small closure of our own (`data` referring to `leaf`), kept alive by an out-link in `dir`. */
function builtData(nix: TestNix, dir: string, name: string): string {
  const salt = `${name}-${process.pid}-${Date.now()}`;
  const expression = `let sh = n: a: derivation { name = n; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" a ]; };
    leaf = sh "${salt}-leaf" "mkdir -p $out/bin && printf 'leaf\\\\n' > $out/bin/leaf";
  in sh "${salt}" "mkdir -p $out && ln -s \${leaf}/bin/leaf $out/leaf && echo data > $out/data"`;
  const out = nixSync(nix, ["build", "--impure", "--expr", expression, "--json", "--out-link", join(dir, name)]);
  return JSON.parse(out)[0].outputs.out as string;
}

/** A `nix-store --export` file of the closure of `path` in `store` (the host's, or a chroot store's). */
function exportClosure(nix: TestNix, file: string, path: string, store = "auto"): void {
  const paths = nixSync(nix, ["path-info", "--store", store, "--recursive", path]).trim().split("\n");
  const bytes = execFileSync(join(nix.bin, "nix-store"), ["--store", store, "--export", ...paths], {
    env: { ...process.env, NIX_CONFIG: TEST_NIX_CONFIG },
    maxBuffer: 1 << 30,
  });
  writeFileSync(file, bytes);
}

/** Two text paths (one referring to the other) made in a store of their own: this host's store never has them. */
function otherStoreClosure(nix: TestNix, store: string): string {
  const salt = `${process.pid}-${Date.now()}`;
  const top = nixSync(nix, [
    "eval",
    "--store",
    `local?root=${store}`,
    "--raw",
    "--expr",
    `let b = builtins.toFile "elsewhere-b-${salt}" "b"; in builtins.toFile "elsewhere-a-${salt}" "a \${b}"`,
  ]);
  assert.equal(existsSync(top), false, "the other store's path is not in this host's store");
  return top;
}

for (const nix of testNixes()) {
  describe(`prepare_root in full with ${nix.version}`, () => {
    const bench = useWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
    const prepare = (configDir: string, fields: RootFields, toplevel = "", rootDir = ""): Promise<PrepareRootResult> =>
      vmSteps(bench()).prepareRoot(configDir, toplevel, rootDir, fields);
    const built = (vm: string): Promise<BuildClosureResult> =>
      vmSteps(bench()).renderLockBuild({ vm_name: vm, profiles: ["devel"], test_suites: [] });
    const gcRoots = () => {
      const dir = join(bench().root, "gcroots");
      mkdirSync(dir, { recursive: true });
      return dir;
    };

    test("extra closures and a channel: valid paths are the union, hard-linked, verified, with the whole layout", async () => {
      const b = await built("full-vm");
      const data = builtData(nix, gcRoots(), "test-data");
      const channel = builtData(nix, gcRoots(), "channel");
      const r = await prepare(b.config_dir, { closures: [data], channel });

      // The layout as prepared, before any Nix opens the root (Nix sets per-user to 0755 when it opens a store).
      const root = r.generation_dir;
      for (const dir of ["dev", "proc", "sys", "etc", "run", "home", "var", "tmp/root", "bin"])
        assert.equal(mode(join(root, dir)), "755", dir);
      assert.equal(mode(join(root, "tmp")), "1777");
      assert.equal(mode(join(root, "root")), "700");
      for (const dir of ["gcroots", "temproots", "userpool", "profiles", "db", "profiles/per-user/root"])
        assert.equal(mode(join(root, "nix/var/nix", dir)), "755", dir);
      assert.equal(mode(join(root, "nix/var/nix/profiles/per-user")), "1777");
      assert.equal(mode(join(root, "nix/var/log/nix/drvs")), "755");
      assert.equal(mode(join(root, "nix/store")), "1775");
      assert.equal(readlinkSync(join(root, "var/run")), "/run");
      assert.equal(readlinkSync(join(root, "run/current-system")), "/nix/var/nix/profiles/system");
      assert.ok(lstatSync(join(root, "etc/NIXOS")).isFile());
      assert.equal(mode(join(root, "root/.nix-defexpr")), "755");
      assert.equal(readlinkSync(join(root, "root/.nix-defexpr/channels")), "/nix/var/nix/profiles/per-user/root/channels");

      const expected = union(closureOf(nix, b.toplevel), closureOf(nix, data), closureOf(nix, channel));
      assert.deepEqual(validPaths(nix, r.generation_dir), expected, "valid paths = union of the closures");
      verifyClean(nix, r.generation_dir);
      assert.equal(r.paths, expected.length);
      assert.deepEqual(
        r.closures.map((c) => [c.field, c.source, c.paths, c.added]),
        [
          ["toplevel", b.toplevel, closureOf(nix, b.toplevel).length, closureOf(nix, b.toplevel).length],
          ["closures[0]", data, 2, 2],
          ["channel", channel, 2, 2],
        ],
      );
      // Still hard links: the extra closure's files are the host store's own.
      assert.equal(r.files_copied, 0);
      assert.equal(statSync(join(r.generation_dir, data, "data")).ino, statSync(join(data, "data")).ino);

      // The profiles are Nix's own: nix-env reads their generations back from the root's store.
      const generationsOf = (profile: string) =>
        execFileSync(
          join(nix.bin, "nix-env"),
          ["-p", join(root, "nix/var/nix/profiles", profile), "--list-generations", "--store", `local?root=${root}`],
          { encoding: "utf8", env: { ...process.env, NIX_CONFIG: TEST_NIX_CONFIG } },
        );
      assert.match(generationsOf("system"), /^\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\(current\)\s*$/);
      assert.match(generationsOf("per-user/root/channels"), /^\s+1\s+.*\(current\)\s*$/);
      assert.equal(readlinkSync(join(root, "nix/var/nix/profiles/system-1-link")), b.toplevel);
      assert.equal(readlinkSync(join(root, "nix/var/nix/profiles/per-user/root/channels-1-link")), channel);
    });

    test("an export file from another store imports beside the system; so does a system this host never had", async () => {
      const b = await built("file-vm");
      const other = join(bench().root, "other-store");
      const elsewhere = otherStoreClosure(nix, other);
      const file = join(bench().root, "elsewhere.export");
      exportClosure(nix, file, elsewhere, `local?root=${other}`);
      const r = await prepare(b.config_dir, { closure_files: [file] });
      const fromFile = validPaths(nix, other);
      assert.equal(fromFile.length, 2);
      assert.deepEqual(validPaths(nix, r.generation_dir), union(closureOf(nix, b.toplevel), fromFile));
      verifyClean(nix, r.generation_dir);
      assert.deepEqual(r.closures.at(-1), { field: "closure_files[0]", source: file, paths: 2, added: 2 });
      assert.equal(existsSync(elsewhere), false, "the file went into the root's store only");

      // A system built elsewhere: exported, then gone from this host's store.
      const synthetic = join(ROOT, "bench", "synthetic-closure.nix");
      const link = join(bench().root, "synthetic");
      const salt = `file-${process.pid}-${Date.now()}`;
      const system = JSON.parse(
        nixSync(nix, [
          "build",
          "-f",
          synthetic,
          "--argstr",
          "salt",
          salt,
          "--arg",
          "parts",
          "2",
          "--arg",
          "files",
          "3",
          "--arg",
          "size",
          "64",
          "--json",
          "--out-link",
          link,
        ]),
      )[0].outputs.out as string;
      const systemClosure = closureOf(nix, system);
      const systemFile = join(bench().root, "system.export");
      exportClosure(nix, systemFile, system);
      rmSync(link);
      nixSync(nix, ["store", "delete", ...systemClosure]);
      assert.equal(existsSync(system), false);
      const s = await prepare(b.config_dir, { closure_files: [systemFile] }, system);
      assert.equal(s.toplevel, system);
      assert.equal(s.init, `${system}/init`);
      assert.deepEqual(validPaths(nix, s.generation_dir), systemClosure);
      verifyClean(nix, s.generation_dir);
      const shell = readlinkSync(join(s.generation_dir, "bin/sh"));
      assert.match(shell, new RegExp(`^/nix/store/[a-z0-9]{32}-synthetic-bash-${salt}/bin/bash$`));
      assert.equal(readlinkSync(join(s.generation_dir, "nix/var/nix/profiles/system-1-link")), system);

      // Such a system's files are its author's data: a boot.json that links out of the root is read inside it, never on
      // the host; one that cannot be read as a bootspec fails the run before the switch, and the root stays.
      const systemLinking = (target: string, name: string) => {
        const out = join(bench().root, name);
        const path = JSON.parse(
          nixSync(
            nix,
            [
              "build",
              "-f",
              synthetic,
              "--argstr",
              "salt",
              `${salt}-${name}`,
              "--arg",
              "parts",
              "1",
              "--arg",
              "files",
              "1",
            ].concat(["--argstr", "bootLink", target, "--json", "--out-link", out]),
          ),
        )[0].outputs.out as string;
        const closure = closureOf(nix, path);
        const exported = join(bench().root, `${name}.export`);
        exportClosure(nix, exported, path);
        rmSync(out);
        nixSync(nix, ["store", "delete", ...closure]);
        return { path, exported };
      };
      const outward = systemLinking("/etc/passwd", "links-out");
      const confined = await prepare(b.config_dir, { closure_files: [outward.exported] }, outward.path);
      assert.equal(confined.init, `${outward.path}/init`, "the link led to the root's own /etc/passwd, which is not there");
      const notBootspec = systemLinking("parts", "not-bootspec");
      const rootBefore = readlinkSync(s.root_dir);
      const failed = await prepare(b.config_dir, { closure_files: [notBootspec.exported] }, notBootspec.path).catch((e) => e);
      assert.ok(failed instanceof SetupError, failed instanceof Error ? failed.stack : JSON.stringify(failed));
      assert.match(failed.message, /boot\.json is not valid JSON/);
      assert.equal(readlinkSync(s.root_dir), rootBefore, "the root stays");
    });

    test("a file that is not an export, and other bad root input, are refused by name; the root stays as it was", async () => {
      const b = await built("badfile-vm");
      const r1 = await prepare(b.config_dir, {});
      const generations = `${b.config_dir}.roots/root`;
      const before = snapshot(generations);
      const notExport = join(bench().root, "not-an-export");
      writeFileSync(notExport, "#!/bin/sh\necho hello\n");
      const good = join(bench().root, "good.export");
      const data = builtData(nix, gcRoots(), "cut-data");
      exportClosure(nix, good, data);
      const open = join(bench().root, "open.export");
      writeFileSync(open, execFileSync(join(nix.bin, "nix-store"), ["--export", data]));
      const trailing = join(bench().root, "trailing.export");
      writeFileSync(trailing, Buffer.concat([readFileSync(good), Buffer.from("more")]));
      const cut = join(bench().root, "cut.export");
      writeFileSync(cut, readFileSync(good).subarray(0, 300));
      const fifo = join(bench().root, "fifo");
      execFileSync("mkfifo", [fifo]);
      const cases: [RootFields, RegExp][] = [
        [{ closure_files: [notExport] }, /^closure_files\[0\]: ".*not-an-export" is not a file written by nix-store --export/],
        [
          { closure_files: [good, cut] },
          /^closure_files\[1\]: ".*cut.export" is not a file written by nix-store --export: it ends at byte 300/,
        ],
        [
          { closure_files: [fifo] },
          /^closure_files\[0\]: ".*fifo" is not a file written by nix-store --export: it is not a regular file/,
        ],
        [{ closure_files: ["relative.export"] }, /^closure_files\[0\]: "relative.export" must be an absolute path/],
        [{ closures: ["/tmp/x"] }, /^closures\[0\]: "\/tmp\/x" must be a store path/],
        [{ closures: [`/nix/store/${"0".repeat(32)}-gone`] }, /^closures\[0\]: .* is not in this host's store/],
        [{ channel: "nixos-26.05" }, /^channel: "nixos-26.05" must be a store path/],
        // A store path that is a file (the system's derivation, kept alive with it): not a channel.
        [
          { channel: execFileSync(join(nix.bin, "nix-store"), ["-qd", b.toplevel], { encoding: "utf8" }).trim() },
          /^channel: ".*\.drv" is not a directory: a channel is a store path holding Nix expressions/,
        ],
        [{ nix_build: "true" }, /^nix_build: "true" must be true or false/],
        [{ closure_files: [good], nix_build: true }, /^closure_files\[0\]: .* cannot go into a root Nix builds/],
      ];
      for (const [fields, message] of cases) {
        await assert.rejects(prepare(b.config_dir, fields), (e: Error) => e instanceof InputError && message.test(e.message));
        assert.equal(readlinkSync(r1.root_dir), r1.generation);
        assert.deepEqual(snapshot(generations), before, `${JSON.stringify(fields)}: nothing changed`);
      }
      verifyClean(nix, r1.generation_dir);
    });

    test("files others may not read, exports Nix would refuse half way, store paths Nix has no record of: refused before anything is written, quoting no file", async () => {
      const b = await built("refused-vm");
      const r1 = await prepare(b.config_dir, {});
      const generations = `${b.config_dir}.roots/root`;
      const before = snapshot(generations);
      const dir = join(bench().root, "refused");
      mkdirSync(dir);
      const secret = "PRIVATE-KEY-MATERIAL-0123";
      const data = builtData(nix, gcRoots(), "refused-data");
      const privateExport = join(dir, "private.export");
      exportClosure(nix, privateExport, data);
      chmodSync(privateExport, 0o600);
      mkdirSync(join(dir, "closed"), { mode: 0o700 });
      const inClosed = join(dir, "closed", "readable.export");
      exportClosure(nix, inClosed, data);
      symlinkSync(privateExport, join(dir, "link.export"));
      writeFileSync(join(dir, "key"), `${secret}\n`, { mode: 0o600 });
      writeFileSync(join(dir, "readable-key"), `${secret}\n`);
      const leaf = storePath("b", "leaf");
      const crafted = (name: string, bytes: Buffer) => {
        writeFileSync(join(dir, name), bytes);
        return join(dir, name);
      };
      let deep = file("x");
      for (let level = 0; level < 20; level++) deep = directory([entry("d".repeat(200), deep)]);
      const sparse = join(dir, "sparse.export");
      const head = Buffer.concat([u64(1), str("nix-archive-1"), str("("), str("type"), str("regular"), str("contents")]);
      const claimed = 64 * 1024 * 1024;
      writeFileSync(sparse, Buffer.concat([head, u64(claimed)]));
      execFileSync("truncate", ["-s", String(head.length + 8 + claimed), sparse]);
      const tail = Buffer.concat([str(")"), u64(0x4558494e), str(storePath("c", "sparse")), u64(0), str(""), u64(0), u64(0)]);
      writeFileSync(sparse, tail, { flag: "a" });
      const unregistered = `/nix/store/${"0".repeat(31)}1-nixos-closure-unregistered-${process.pid}`;
      mkdirSync(unregistered);
      const cases: [RootFields, RegExp, string?][] = [
        [
          { closure_files: [privateExport] },
          /^closure_files\[0\]: ".*private\.export" is .*private\.export, which only its owner may read/,
        ],
        [
          { closure_files: [inClosed] },
          /^closure_files\[0\]: ".*readable\.export" is in .*closed, which only its owner may read/,
        ],
        [{ closure_files: [join(dir, "link.export")] }, /^closure_files\[0\]: ".*link\.export" is .*private\.export, which only/],
        [{ closure_files: [join(dir, "key")] }, /^closure_files\[0\]: ".*key" is .*key, which only its owner may read/],
        [{ closure_files: [join(dir, "readable-key")] }, /is not a file written by nix-store --export: byte 0 holds neither 1/],
        [
          {
            closure_files: [
              crafted(
                "order.export",
                exportFile(exported(narOf(["x"]), storePath("d", "top"), [leaf]), exported(narOf(["y"]), leaf)),
              ),
            ],
          },
          /order\.export" is not a file written by nix-store --export: path 1 references a path the file does not hold before it/,
        ],
        [
          { closure_files: [crafted("dotdot.export", exportFile(exported(narOf(["x"]), storePath("d", ".."))))] },
          /path 1 at byte \d+ is not a store path Nix takes/,
        ],
        [
          { closure_files: [crafted("long.export", exportFile(exported(narOf(["x"]), storePath("d", "n".repeat(212)))))] },
          /at most 211 characters/,
        ],
        [
          { closure_files: [crafted("deep.export", exportFile(exported(nar(deep), storePath("d", "deep"))))] },
          /deep\.export" holds a file whose path in the root would be \d+ bytes long, more than the 4095 Linux allows/,
        ],
        [{ closure_files: [sparse] }, /sparse\.export" is sparse: it claims 64\.0 MiB but holds .* on disk/],
        [
          { closures: [unregistered] },
          /^closures\[0\]: ".*unregistered.*" is in the store directory but is not a valid store path/,
        ],
        [{ channel: unregistered }, /^channel: ".*unregistered.*" is in the store directory but is not a valid store path/],
        [{}, /^toplevel: ".*unregistered.*" is in the store directory but is not a valid store path/, unregistered],
      ];
      try {
        for (const [fields, message, toplevel] of cases) {
          await assert.rejects(prepare(b.config_dir, fields, toplevel), (e: Error) => {
            assert.ok(e instanceof InputError, `${JSON.stringify(fields)}: ${e.stack}`);
            assert.match(e.message, message);
            assert.ok(!e.message.includes("PRIVATE"), e.message);
            return true;
          });
          assert.equal(readlinkSync(r1.root_dir), r1.generation);
          assert.deepEqual(snapshot(generations), before, `${JSON.stringify(fields).slice(0, 200)}: nothing changed`);
        }
      } finally {
        rmSync(unregistered, { recursive: true });
      }
      verifyClean(nix, r1.generation_dir);
    });

    test("a closure file claiming more than the root's file system has free is refused before Nix reads it", async (t) => {
      const b = await built("room-vm");
      const small = join(bench().root, "small-disk");
      mkdirSync(small);
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", small], { stdio: "pipe" });
      } catch (error) {
        t.skip(`cannot mount a small tmpfs here: ${(error as Error).message.split("\n")[0]}`);
        return;
      }
      try {
        const big = join(bench().root, "big.export");
        writeFileSync(big, exportFile(exported(nar(file("x".repeat(2 * 1024 * 1024))), storePath("f", "big"))));
        await assert.rejects(
          prepare(b.config_dir, { closure_files: [big] }, "", join(small, "root")),
          (e: Error) =>
            e instanceof InputError &&
            /^closure_files\[0\]: ".*big\.export" holds store paths of 2\.0 MiB .*more than the .* free on the file system of .*small-disk/.test(
              e.message,
            ),
        );
        assert.deepEqual(readdirSync(small), [], "nothing was written there");
      } finally {
        execFileSync("umount", [small]);
      }
    });

    test("a system whose boot.json links to a FIFO or a private file fails at once, quoting nothing; the root stays", async () => {
      const b = await built("bootlink-vm");
      const r1 = await prepare(b.config_dir, {});
      const fifo = join(bench().root, "boot-fifo");
      execFileSync("mkfifo", [fifo]);
      const secret = join(bench().root, "boot-secret");
      writeFileSync(secret, "PRIVATE-KEY-MATERIAL\n", { mode: 0o600 });
      const system = (name: string, bootLink: string) =>
        JSON.parse(
          nixSync(nix, [
            "build",
            "-f",
            join(ROOT, "bench", "synthetic-closure.nix"),
            ...["--argstr", "salt", `${name}-${process.pid}-${Date.now()}`, "--arg", "parts", "1", "--arg", "files", "1"],
            ...["--argstr", "bootLink", bootLink, "--json", "--out-link", join(gcRoots(), name)],
          ]),
        )[0].outputs.out as string;
      // In a process of its own: a read that waited on the FIFO would block this one for good.
      const toFifo = system("boot-fifo", fifo);
      const code = `import { main } from ${JSON.stringify(join(ROOT, "f/nix/prepare_root.ts"))}; await main(${JSON.stringify(b.config_dir)}, ${JSON.stringify(toFifo)});`;
      const child = spawn(join(ROOT, "node_modules/.bin/bun"), ["-e", code], {
        env: bench().env,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      const exitCode = await within(60_000, "prepare_root to refuse the bootspec", new Promise((r) => child.on("exit", r)), () =>
        child.kill("SIGKILL"),
      );
      assert.equal(exitCode, 1, stderr);
      assert.match(
        stderr,
        new RegExp(`${toFifo}/boot\\.json leads to ${fifo}, outside /nix/store, the only place it is read from`),
      );
      const toSecret = system("boot-secret", secret);
      await assert.rejects(prepare(b.config_dir, {}, toSecret), (e: Error) => {
        assert.ok(e instanceof SetupError, e.stack);
        assert.match(e.message, new RegExp(`boot\\.json leads to ${secret}, outside /nix/store`));
        assert.doesNotMatch(e.message, /PRIVATE/);
        return true;
      });
      assert.equal(readlinkSync(r1.root_dir), r1.generation, "the root stays");
      assert.equal(await lockHolderOf(b.config_dir, bench().env), null, "and the VM is free");
    });

    test("a closure file swapped for a FIFO after its check: Nix reads what was checked; a run waiting then ends on SIGTERM", async () => {
      const b = await built("swap-vm");
      const r1 = await prepare(b.config_dir, {});
      const data = builtData(nix, gcRoots(), "swap-data");
      const swapped = join(bench().root, "swap.export");
      exportClosure(nix, swapped, data);
      const swap = () => {
        rmSync(swapped);
        execFileSync("mkfifo", [swapped]);
      };
      let release = () => {};
      const held = withDirLock(
        b.config_dir,
        lockHolder("holding-test", 5),
        () =>
          new Promise<void>((r) => {
            release = r;
          }),
      );
      const lockFile = `${b.config_dir}.lock`;
      await waitFor(10_000, "the test to hold the lock", () => (readIfExists(lockFile) ?? "").includes("holding-test"));

      // A run in a process of its own, its file checked, waiting for the lock: the file becomes a FIFO, then SIGTERM.
      const args = [b.config_dir, "", "", [], [swapped]];
      const code = `import { main } from ${JSON.stringify(join(ROOT, "f/nix/prepare_root.ts"))}; await main(...${JSON.stringify(args)});`;
      const child = spawn(join(ROOT, "node_modules/.bin/bun"), ["-e", code], {
        env: bench().env,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      const exited = new Promise<[number | null, string | null]>((r) => child.on("exit", (c, s) => r([c, s])));
      await waitFor(
        30_000,
        "the run to wait for the lock",
        () => stderr.includes("waiting for holding-test"),
        () => child.kill("SIGKILL"),
      );
      swap();
      child.kill("SIGTERM");
      const [, signal] = await within(10_000, "the run to end on SIGTERM", exited, () => child.kill("SIGKILL"));
      assert.equal(signal, "SIGTERM", stderr);

      // The same in this process: the check reads the export, the swap comes while it waits, the import reads the checked file.
      rmSync(swapped);
      exportClosure(nix, swapped, data);
      const log = captureLog();
      const preparing = vmSteps(bench(), { log }).prepareRoot(b.config_dir, "", "", { closure_files: [swapped] });
      await waitFor(30_000, "the run to wait for the lock", () => log.text().includes("waiting for holding-test"));
      swap();
      release();
      await held;
      const r2 = await within(60_000, "the import of the checked file", preparing);
      assert.deepEqual(validPaths(nix, r2.generation_dir), union(closureOf(nix, b.toplevel), closureOf(nix, data)));
      verifyClean(nix, r2.generation_dir);
      assert.equal(existsSync(r1.generation), true, "the generation before stays, as the previous one");
    });

    test("a run killed while importing a file keeps the last root; the next run recovers", async () => {
      const b = await built("killimport-vm");
      const r1 = await prepare(b.config_dir, {});
      const file = join(bench().root, "kill.export");
      exportClosure(nix, file, builtData(nix, gcRoots(), "kill-data"));
      // A Nix whose import is slow, so the prepare can be killed in the middle of it.
      const slowBin = join(bench().root, "slow-import-nix");
      mkdirSync(slowBin, { recursive: true });
      symlinkSync(join(nix.bin, "nix"), join(slowBin, "nix"));
      writeFileSync(
        join(slowBin, "nix-store"),
        `#!/bin/sh\ncase "$*" in *--import*) sleep 30;; esac\nexec ${join(nix.bin, "nix-store")} "$@"\n`,
      );
      chmodSync(join(slowBin, "nix-store"), 0o755);
      const args = [b.config_dir, b.toplevel, "", [], [file]];
      const code = `import { main } from ${JSON.stringify(join(ROOT, "f/nix/prepare_root.ts"))}; await main(...${JSON.stringify(args)});`;
      const child = spawn(join(ROOT, "node_modules/.bin/bun"), ["-e", code], {
        env: { ...bench().env, NIX_BIN: slowBin },
        stdio: "ignore",
      });
      const exited = new Promise((r) => child.on("exit", r));
      await waitFor(
        20_000,
        "the import to get under way",
        () => processesOf(bench().root).some((c) => c.includes("--import") && c.includes(`${b.config_dir}.roots/root/2.partial`)),
        () => child.kill("SIGKILL"),
      );
      child.kill("SIGKILL");
      await within(10_000, "the killed prepare to exit", exited, () => child.kill("SIGKILL"));
      assert.equal(readlinkSync(r1.root_dir), r1.generation, "the root still points to the last complete generation");
      assert.deepEqual(validPaths(nix, r1.generation_dir), closureOf(nix, b.toplevel));
      const r2 = await prepare(b.config_dir, { closure_files: [file] });
      assert.equal(existsSync(`${b.config_dir}.roots/root/2.partial`), false, "the leftover is removed");
      assert.equal(readlinkSync(r2.root_dir), r2.generation);
      verifyClean(nix, r2.generation_dir);
    });

    test("a root built by Nix: a store path with the layout and a registration that loads into a verified store", async () => {
      const b = await built("nixbuilt-vm");
      const data = builtData(nix, gcRoots(), "built-data");
      const channel = builtData(nix, gcRoots(), "built-channel");
      const r = await prepare(b.config_dir, { closures: [data], channel, nix_build: true });
      assert.equal(r.nix_build, true);
      assert.match(r.generation_dir, /^\/nix\/store\/[a-z0-9]{32}-nixos-closure-root$/);
      assert.equal(readlinkSync(r.root_dir), r.generation);
      assert.equal(readlinkSync(r.generation), r.generation_dir, "the generation is the out-link, a GC root");
      const root = r.generation_dir;
      const expected = union(closureOf(nix, b.toplevel), closureOf(nix, data), closureOf(nix, channel));
      assert.deepEqual(
        readdirSync(join(root, "nix/store")).sort(),
        expected.map((p) => p.slice("/nix/store/".length)).sort(),
        "its store holds exactly the union",
      );
      for (const dir of [
        "dev",
        "proc",
        "sys",
        "etc",
        "run",
        "home",
        "tmp/root",
        "var",
        "root",
        "bin",
        "nix/var/nix/gcroots",
        "nix/var/nix/temproots",
        "nix/var/nix/userpool",
        "nix/var/nix/db",
        "nix/var/nix/profiles/per-user/root",
        "nix/var/log/nix/drvs",
      ])
        assert.ok(statSync(join(root, dir)).isDirectory(), dir);
      assert.equal(readlinkSync(join(root, "nix/var/nix/profiles/system")), "system-1-link");
      assert.equal(readlinkSync(join(root, "nix/var/nix/profiles/system-1-link")), b.toplevel);
      assert.equal(readlinkSync(join(root, "nix/var/nix/profiles/per-user/root/channels-1-link")), channel);
      assert.equal(readlinkSync(join(root, "root/.nix-defexpr/channels")), "/nix/var/nix/profiles/per-user/root/channels");
      assert.equal(readlinkSync(join(root, "run/current-system")), "/nix/var/nix/profiles/system");
      assert.match(readlinkSync(join(root, "bin/sh")), /-bash-5\.2-fixture\/bin\/bash$/);

      // Unpacked where it is served (modes as the spec's table), its registration makes a store Nix verifies.
      const unpacked = join(bench().root, "unpacked");
      execFileSync("cp", ["-a", root, unpacked]);
      execFileSync("chmod", ["-R", "u+w", unpacked]);
      execFileSync(join(nix.bin, "nix-store"), ["--store", `local?root=${unpacked}`, "--load-db"], {
        input: readFileSync(join(unpacked, "nix-path-registration")),
        env: { ...process.env, NIX_CONFIG: TEST_NIX_CONFIG },
      });
      assert.deepEqual(validPaths(nix, unpacked), expected);
      verifyClean(nix, unpacked);
      removeTree(unpacked);

      // The same input, the same path; the next hard-linked root takes its files from it.
      const again = await prepare(b.config_dir, { closures: [data], channel, nix_build: true });
      assert.equal(again.generation_dir, r.generation_dir);
      const linked = await prepare(b.config_dir, { closures: [data], channel });
      assert.equal(linked.nix_build, false);
      assert.deepEqual(validPaths(nix, linked.generation_dir), expected);
      assert.equal(existsSync(r.generation), false, "the generation before the previous one is pruned");
    });
  });
}

/** Builds a root with Nix in a workbench of `nix`, then deletes it from the store; returns its path and NAR hash. */
async function builtRootOnce(nix: TestNix, vm: string, wb: Workbench): Promise<{ path: string; narHash: string }> {
  const steps = vmSteps(wb);
  const b = await steps.renderLockBuild({ vm_name: vm, profiles: ["devel"], test_suites: [] });
  const r = await steps.prepareRoot(b.config_dir, "", "", { nix_build: true });
  const narHash = nixSync(nix, ["path-info", "--json", r.generation_dir]);
  const hash = JSON.parse(narHash) as Record<string, { narHash?: string }> | { narHash?: string }[];
  const info = Array.isArray(hash) ? hash[0] : hash[r.generation_dir];
  // The bytes themselves, the same whatever form of the hash a version prints.
  const dump = execFileSync(join(nix.bin, "nix-store"), ["--dump", r.generation_dir], { maxBuffer: 1 << 30 });
  const sha = execFileSync("sha256sum", { input: dump, encoding: "utf8" }).split(" ")[0] ?? "";
  assert.ok(info?.narHash);
  rmSync(r.root_dir);
  removeTree(`${b.config_dir}.roots`);
  nixSync(nix, ["store", "delete", r.generation_dir]);
  assert.equal(existsSync(r.generation_dir), false);
  return { path: r.generation_dir, narHash: sha };
}

describe("a root built by Nix is byte-identical across builds and Nix versions", () => {
  test("built twice by each Nix under test, with the store path deleted in between", async () => {
    const results: { version: string; path: string; narHash: string }[] = [];
    for (const nix of testNixes()) {
      const wb = createWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
      try {
        // A system of this run's own: another run's root of the same one would keep the path alive.
        const vm = ownName("same-root-vm");
        for (const _ of [1, 2]) results.push({ version: nix.version, ...(await builtRootOnce(nix, vm, wb)) });
      } finally {
        wb.cleanup();
      }
    }
    const first = results[0];
    assert.ok(first);
    for (const r of results)
      assert.deepEqual({ path: r.path, narHash: r.narHash }, { path: first.path, narHash: first.narHash }, r.version);
  });
});
