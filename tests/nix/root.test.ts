// prepare_root with the real nix: a root whose store holds exactly the
// closure, made without root powers, switched atomically between generations.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { InputError, SetupError } from "../../f/nix/lib/core/errors.ts";
import type { BuildClosureResult } from "../../f/nix/lib/steps/building.ts";
import { nixSync, type TestNix, testNixes } from "../helpers/nix.ts";
import { vmSteps, waitFor, within } from "../helpers/steps.ts";
import { useWorkbench } from "../helpers/workbench.ts";

function closureOf(nix: TestNix, path: string): string[] {
  return nixSync(nix, ["path-info", "--recursive", path]).trim().split("\n").sort();
}

function validPaths(nix: TestNix, root: string): string[] {
  return nixSync(nix, ["path-info", "--store", `local?root=${root}`, "--all"])
    .trim()
    .split("\n")
    .sort();
}

const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8);

for (const nix of testNixes()) {
  describe(`prepare_root with ${nix.version}`, () => {
    const bench = useWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
    const prepareRoot = (configDir: string, toplevel: string, rootDir = "") =>
      vmSteps(bench()).prepareRoot(configDir, toplevel, rootDir);
    const built = (vm: string, profiles: ("devel" | "build-tools")[]): Promise<BuildClosureResult> =>
      vmSteps(bench()).renderLockBuild({ vm_name: vm, profiles, test_suites: ["fstests"] });

    test("the root's store holds exactly the closure, verified, with the layout of nixos-prepare-root", async () => {
      const b = await built("root-vm", ["devel"]);
      const r = await prepareRoot(b.config_dir, "");
      assert.equal(r.toplevel, b.toplevel, "an empty toplevel is the config dir's last build");
      assert.equal(r.root_dir, join(b.config_dir, "root"));
      assert.equal(r.store_dir, join(b.config_dir, "root", "nix", "store"));
      assert.equal(r.generation, `${b.config_dir}.roots/root/1`);
      assert.equal(readlinkSync(r.root_dir), r.generation, "the root is a link to its generation");
      assert.equal(r.toplevel, b.toplevel);
      assert.equal(r.init, b.init);

      const closure = closureOf(nix, b.toplevel);
      assert.deepEqual(validPaths(nix, r.generation), closure, "valid paths = closure");
      assert.deepEqual(
        readdirSync(r.store_dir)
          .filter((n) => !n.startsWith("."))
          .sort(),
        closure.map((p) => p.slice("/nix/store/".length)).sort(),
        "store files = closure",
      );
      assert.equal(r.paths, closure.length);
      assert.ok(r.nar_size > 0);
      const verify = nixSync(nix, ["store", "verify", "--no-trust", "--store", `local?root=${r.generation}`, "--all"]);
      assert.doesNotMatch(verify, /corrupt|invalid|modified|error/i);

      const root = r.generation;
      for (const dir of ["dev", "proc", "sys", "etc", "run", "home", "var"]) assert.equal(mode(join(root, dir)), "755", dir);
      assert.equal(mode(join(root, "tmp")), "1777");
      assert.equal(mode(join(root, "root")), "700");
      for (const dir of ["gcroots", "temproots", "userpool", "profiles", "db"])
        assert.equal(mode(join(root, "nix/var/nix", dir)), "755", dir);
      assert.equal(mode(join(root, "nix/var/log/nix/drvs")), "755");
      assert.equal(mode(join(root, "nix/store")), "1775");
      assert.equal(readlinkSync(join(root, "var/run")), "/run");
      const sh = readlinkSync(join(root, "bin/sh"));
      assert.match(sh, /^\/nix\/store\/[a-z0-9]{32}-bash-5\.2-fixture\/bin\/bash$/);
      assert.ok(closure.includes(sh.split("/").slice(0, 4).join("/")), "/bin/sh is from the closure");
      assert.equal(readlinkSync(join(root, "nix/var/nix/profiles/system")), "system-1-link");
      assert.equal(readlinkSync(join(root, "nix/var/nix/profiles/system-1-link")), b.toplevel);
      assert.equal(readlinkSync(join(root, "run/current-system")), "/nix/var/nix/profiles/system");
      assert.ok(lstatSync(join(root, "etc/NIXOS")).isFile());
      assert.ok(r.files_linked > 0, "same filesystem as /nix/store: hard links");

      // The config dir stays small: the root is a link, its generations live beside the dir.
      assert.ok(lstatSync(r.root_dir).isSymbolicLink());
      assert.ok(!readdirSync(b.config_dir).includes("1"));
    });

    test("on another filesystem than /nix/store the files are copied; the next generation links them", async (t) => {
      const other = join(bench().root, "other-fs");
      mkdirSync(other, { recursive: true });
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=256m", "tmpfs", other], { stdio: "pipe" });
      } catch (error) {
        t.skip(`cannot mount a tmpfs here to get a second filesystem: ${(error as Error).message.split("\n")[0]}`);
        return;
      }
      try {
        const b = await built("copy-vm", ["devel"]);
        const rootDir = join(other, "root");
        const r1 = await prepareRoot(b.config_dir, b.toplevel, rootDir);
        assert.equal(r1.generation, `${rootDir}.generations/1`);
        assert.equal(r1.files_linked, 0, "no hard links across filesystems");
        assert.ok(r1.files_copied > 0);
        assert.deepEqual(validPaths(nix, r1.generation), closureOf(nix, b.toplevel));
        const verify = nixSync(nix, ["store", "verify", "--no-trust", "--store", `local?root=${r1.generation}`, "--all"]);
        assert.doesNotMatch(verify, /corrupt|invalid|modified|error/i);
        const r2 = await prepareRoot(b.config_dir, b.toplevel, rootDir);
        assert.equal(r2.files_copied, 0, "the next generation reuses the previous one's files");
        assert.ok(r2.files_linked > 0);
      } finally {
        execFileSync("umount", [other]);
      }
    });

    test("a rebuild with one package changed swaps the root and removes exactly the stale paths", async () => {
      const first = await built("swap-vm", ["devel"]);
      const r1 = await prepareRoot(first.config_dir, first.toplevel);
      const second = await built("swap-vm", ["devel", "build-tools"]);
      const r2 = await prepareRoot(second.config_dir, second.toplevel);
      assert.equal(r2.generation, `${second.config_dir}.roots/root/2`);
      assert.equal(readlinkSync(r2.root_dir), r2.generation);

      const before = closureOf(nix, first.toplevel);
      const now = closureOf(nix, second.toplevel);
      assert.deepEqual(validPaths(nix, r2.generation), now);
      const stale = before.filter((p) => !now.includes(p));
      assert.ok(stale.length > 0);
      for (const path of stale) assert.ok(!existsSync(join(r2.generation, path)), `${path} is gone from the new root`);
      for (const path of now) assert.ok(existsSync(join(r2.generation, path)), `${path} is in the new root`);
      // The previous generation is untouched until the next run: a VM may still use it.
      assert.deepEqual(validPaths(nix, r1.generation), before);
      const r3 = await prepareRoot(second.config_dir, second.toplevel);
      assert.equal(existsSync(r1.generation), false, "the generation before the previous one is removed");
      assert.ok(existsSync(r2.generation));
      assert.equal(readlinkSync(r3.root_dir), r3.generation);
    });

    test("an interrupted prepare keeps the last complete root; the next run cleans up", async () => {
      const b = await built("kill-vm", ["devel"]);
      const r1 = await prepareRoot(b.config_dir, b.toplevel);
      // A Nix whose nix-store is slow to read the registrations (once the root is under way), so the prepare can be
      // killed mid-way.
      const slowBin = join(bench().root, "slow-nix");
      mkdirSync(slowBin, { recursive: true });
      symlinkSync(join(nix.bin, "nix"), join(slowBin, "nix"));
      writeFileSync(
        join(slowBin, "nix-store"),
        `#!/bin/sh\ncase "$*" in *--dump-db*) sleep 30;; esac\nexec ${join(nix.bin, "nix-store")} "$@"\n`,
      );
      chmodSync(join(slowBin, "nix-store"), 0o755);
      const code = `import { main } from ${JSON.stringify(join(ROOT, "f/nix/prepare_root.ts"))}; await main(${JSON.stringify(b.config_dir)}, ${JSON.stringify(b.toplevel)});`;
      const child = spawn(join(ROOT, "node_modules/.bin/bun"), ["-e", code], {
        env: { ...bench().env, NIX_BIN: slowBin },
        stdio: "ignore",
      });
      const exited = new Promise((r) => child.on("exit", r));
      const partial = `${b.config_dir}.roots/root/2.partial`;
      await waitFor(
        20_000,
        "the prepare to get under way",
        () => existsSync(join(partial, "nix/store")),
        () => child.kill("SIGKILL"),
      );
      child.kill("SIGKILL");
      await within(10_000, "the killed prepare to exit", exited, () => child.kill("SIGKILL"));

      assert.equal(readlinkSync(r1.root_dir), r1.generation, "the root still points to the last complete generation");
      assert.deepEqual(validPaths(nix, r1.generation), closureOf(nix, b.toplevel));
      const r2 = await prepareRoot(b.config_dir, b.toplevel);
      assert.equal(existsSync(partial), false, "the leftover of the interrupted run is removed");
      assert.equal(readlinkSync(r2.root_dir), r2.generation);
    });

    test("bad input and a closure without a shell are refused, leaving the root as it was", async () => {
      const b = await built("bad-vm", ["devel"]);
      await assert.rejects(prepareRoot(b.config_dir, "/tmp/not-a-store-path"), InputError);
      const unbuilt = await vmSteps(bench()).render({ vm_name: "unbuilt-vm", profiles: [], test_suites: [] });
      await assert.rejects(
        prepareRoot(unbuilt.config_dir, ""),
        (e: Error) => e instanceof SetupError && /has no build yet \(no result link\): run build_closure first/.test(e.message),
      );
      assert.equal(existsSync(`${unbuilt.config_dir}.roots`), false, "nothing was prepared");
      await assert.rejects(prepareRoot(b.config_dir, b.toplevel, "relative/root"), /must be an absolute path/);
      await assert.rejects(prepareRoot(b.config_dir, b.toplevel, join(b.toplevel, "root")), /must not be inside \/nix\/store/);
      const occupied = join(bench().root, "occupied");
      mkdirSync(join(occupied, "data"), { recursive: true });
      await assert.rejects(prepareRoot(b.config_dir, b.toplevel, occupied), /is not a root prepared here/);
      assert.ok(existsSync(join(occupied, "data")));

      const r1 = await prepareRoot(b.config_dir, b.toplevel);
      const bash = readlinkSync(join(r1.generation, "bin/sh")).split("/").slice(0, 4).join("/");
      await assert.rejects(
        prepareRoot(b.config_dir, bash),
        (e: Error) => e instanceof SetupError && /has no shell for \/bin\/sh/.test(e.message),
      );
      assert.equal(readlinkSync(r1.root_dir), r1.generation);
      assert.deepEqual(
        readdirSync(`${b.config_dir}.roots/root`).filter((n) => n.endsWith(".partial")),
        [],
      );
    });
  });
}
