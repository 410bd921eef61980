// Source overrides that provably reach the closure, with the real nix: a
// typo, an override nothing uses, an optional one, and a good one whose
// source and the paths built from it the result shows.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { RenderInput } from "../../f/nix/lib/config/model.ts";
import { InputError } from "../../f/nix/lib/core/errors.ts";
import { nixSync, testNixes } from "../helpers/nix.ts";
import { captureLog, vmSteps } from "../helpers/steps.ts";
import { useWorkbench } from "../helpers/workbench.ts";

for (const nix of testNixes()) {
  describe(`overrides checked before the build with ${nix.version}`, () => {
    const bench = useWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });

    /** A source directory of this run's own, so that its store path is new. */
    function source(name: string): string {
      const dir = join(bench().root, "src", name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "salt"), `${name}-${process.pid}-${Date.now()}`);
      return dir;
    }

    async function renderedAndLocked(input: RenderInput): Promise<string> {
      const r = await vmSteps(bench()).render(input);
      await vmSteps(bench()).lock(r.config_dir);
      return r.config_dir;
    }

    test("a directory swapped, after render, for a link into a private tree is refused at lock; nothing is copied", async () => {
      const parent = join(bench().root, "src", `swapped-${process.pid}`);
      mkdirSync(join(parent, "xfsprogs"), { recursive: true });
      writeFileSync(join(parent, "xfsprogs", "configure"), "#!/bin/sh\n");
      const r = await vmSteps(bench()).render({
        vm_name: "swap-vm",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src: join(parent, "xfsprogs") }],
      });
      // The source's owner swaps a part of its path for a link into a tree only they (or root) may read.
      const secret = join(bench().root, `secret-${process.pid}`);
      mkdirSync(join(secret, "xfsprogs"), { recursive: true, mode: 0o700 });
      chmodSync(secret, 0o700);
      writeFileSync(join(secret, "xfsprogs", "id_rsa"), "PRIVATE\n", { mode: 0o600 });
      renameSync(parent, `${parent}.old`);
      symlinkSync(secret, parent);
      await assert.rejects(vmSteps(bench()).lock(r.config_dir), (e: Error) => {
        assert.ok(e instanceof InputError, String(e));
        assert.match(e.message, /xfsprogs-src: ".*xfsprogs" now leads elsewhere .* than when render_config checked it/);
        return true;
      });
      assert.equal(existsSync(join(r.config_dir, "flake.lock")), false, "nothing was locked");
      // And a tree made private since render is refused too.
      rmSync(parent);
      renameSync(`${parent}.old`, parent);
      chmodSync(join(parent, "xfsprogs", "configure"), 0o600);
      await assert.rejects(vmSteps(bench()).lock(r.config_dir), /which only its owner may read/);
    });

    test("a misspelt package is refused with the closest names, before anything is built", async () => {
      const dir = await renderedAndLocked({
        vm_name: "typo-vm",
        profiles: [],
        test_suites: ["fstests"],
        extra_overrides: [{ pkg: "xfsprog", src: source("typo") }],
      });
      await assert.rejects(vmSteps(bench()).build(dir), (e: Error) => {
        assert.ok(e instanceof InputError, String(e));
        assert.equal(e.field, "closure.overrides");
        assert.match(e.message, /"xfsprog" is not a package of this nixpkgs; did you mean "xfsprogs"\?/);
        return true;
      });
      assert.equal(existsSync(join(dir, "result")), false, "nothing was built");
      await assert.rejects(vmSteps(bench()).plan(dir), /did you mean "xfsprogs"/);
    });

    test("an override of a package this VM does not use is refused, unless it is optional", async () => {
      const src = source("fio-unused");
      const input = (optional: boolean): RenderInput => ({
        vm_name: "unused-vm",
        profiles: [],
        test_suites: ["selftests"],
        overrides: [{ pkg: "fio", src, optional }],
      });
      const dir = await renderedAndLocked(input(false));
      await assert.rejects(
        vmSteps(bench()).build(dir),
        (e: Error) => e instanceof InputError && /"fio" is a package nothing in this VM uses.*"optional": true/.test(e.message),
      );
      assert.equal(existsSync(join(dir, "result")), false);

      const rendered = await vmSteps(bench()).render(input(true));
      assert.deepEqual(rendered.optional_overrides, ["fio"]);
      const built = await vmSteps(bench()).build(dir, rendered.optional_overrides);
      assert.equal(built.overrides.length, 1);
      assert.equal(built.overrides[0]?.pkg, "fio");
      assert.equal(built.overrides[0]?.optional, true);
      assert.deepEqual(built.overrides[0]?.built, [], "it reaches nothing, and may");
    });

    test("a git override named by a flake-style git+file:// URL locks and plans, whatever the repository's branch", async () => {
      const repo = source("xfsprogs-git");
      const git = (...args: string[]) =>
        execFileSync("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@t.invalid", ...args], { stdio: "pipe" });
      git("init", "-q", "-b", "trunk");
      git("add", ".");
      git("commit", "-q", "-m", "salt");
      for (const ref of [null, "trunk"]) {
        const dir = await renderedAndLocked({
          vm_name: "git-override-vm",
          profiles: [],
          test_suites: ["fstests"],
          overrides: [{ pkg: "xfsprogs", src: `git+file://${repo}`, ...(ref ? { ref } : {}) }],
        });
        const [report] = (await vmSteps(bench()).plan(dir)).overrides;
        assert.match(report?.source ?? "", /^\/nix\/store\/[a-z0-9]{32}-source$/, `ref ${ref}`);
      }
    });

    test("a good override: the result shows its source and the closure paths built from it", async () => {
      const src = source("xfsprogs-good");
      const dir = await renderedAndLocked({
        vm_name: "good-override-vm",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src }],
      });
      const log = captureLog();
      const planned = await vmSteps(bench(), { log }).plan(dir);
      const built = await vmSteps(bench(), { log }).build(dir);
      const [report] = built.overrides;
      assert.ok(report);
      assert.deepEqual(planned.overrides, built.overrides, "the plan says the same before building");
      assert.equal(report.pkg, "xfsprogs");
      assert.match(report.source, /^\/nix\/store\/[a-z0-9]{32}-source$/);
      assert.equal(report.built.length, 1);
      assert.match(report.built[0] ?? "", /-xfsprogs-6\.13\.0$/);
      const closure = nixSync(nix, ["path-info", "--recursive", built.toplevel]).trim().split("\n");
      assert.ok(closure.includes(report.built[0] ?? ""), "what it built is in the closure");
      const drv = nixSync(nix, ["path-info", "--derivation", built.toplevel]).trim();
      const requisites = nixSync(nix, ["path-info", "--recursive", drv]).trim().split("\n");
      assert.ok(requisites.includes(report.source), "the source is a requisite of the toplevel's derivation");
      assert.deepEqual([report.kind, report.from], ["path", src]);
      assert.ok(report.source_bytes !== null && report.source_bytes > 0);
      assert.match(
        log.text(),
        new RegExp(
          `override xfsprogs \\(path, [\\d.]+ B of source from ${src}\\): ${report.source} builds .*-xfsprogs-6\\.13\\.0`,
        ),
      );

      // Unchanged files: the answer is reused, no evaluation asked; a changed source is checked afresh.
      const again = captureLog();
      assert.deepEqual((await vmSteps(bench(), { log: again }).build(dir)).overrides, built.overrides);
      assert.doesNotMatch(again.text(), /path-info --derivation/);
      writeFileSync(join(src, "salt"), `changed-${Date.now()}`);
      await vmSteps(bench()).lock(dir);
      const changed = captureLog();
      const rebuilt = await vmSteps(bench(), { log: changed }).build(dir);
      assert.match(changed.text(), /path-info --derivation/);
      assert.notEqual(rebuilt.overrides[0]?.source, report.source);
    });

    /** A git repository of this run's own with `files` committed; returns its directory. */
    function repository(name: string, files: Record<string, string>): string {
      const dir = join(bench().root, "src", `${name}-${process.pid}-${Date.now()}`);
      mkdirSync(dir, { recursive: true });
      git(dir, "init", "-q");
      for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
      git(dir, "add", ".");
      git(dir, "commit", "-qm", name);
      return dir;
    }
    const files = (dir: string) => readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();

    test("a git work tree gives its tracked files with their uncommitted changes and its submodules, nothing else", async () => {
      const sub = repository("libsub", { "s.txt": "from the submodule\n" });
      const tree = repository("xfsprogs-tree", { "main.c": "committed\n", ".gitignore": "build/\n*.swp\n" });
      git(tree, "-c", "protocol.file.allow=always", "submodule", "-q", "add", sub, "libsub");
      git(tree, "commit", "-qm", "with a submodule");
      writeFileSync(join(tree, "main.c"), "edited, not committed\n");
      mkdirSync(join(tree, "build"));
      writeFileSync(join(tree, "build", "main.o"), "a host-built object\n");
      writeFileSync(join(tree, ".main.c.swp"), "an editor's file\n");
      writeFileSync(join(tree, "notes.txt"), "untracked\n");
      writeFileSync(join(tree, ".env"), "TOKEN=secret\n", { mode: 0o600 }); // untracked: never copied, so never refused
      const status = git(tree, "status", "--porcelain");
      const head = git(tree, "rev-parse", "HEAD");
      const steps = vmSteps(bench(), { env: ALLOW_LOCAL_SUBMODULES });
      const input: RenderInput = {
        vm_name: "work-tree-vm",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src: tree }],
      };
      const log = captureLog();
      const rendered = await vmSteps(bench(), { env: ALLOW_LOCAL_SUBMODULES, log }).render(input);
      assert.doesNotMatch(log.text(), /warning: override/, "a work tree of the user's own, readable by all: nothing to warn of");
      await steps.lock(rendered.config_dir);
      const built = await steps.build(rendered.config_dir);
      const [report] = built.overrides;
      assert.ok(report);
      assert.deepEqual([report.kind, report.from], ["git", tree]);
      assert.ok(report.source_bytes !== null && report.source_bytes < 16 * 1024, `${report.source_bytes} bytes of source`);
      assert.deepEqual(files(report.source), [".gitignore", ".gitmodules", "libsub", "libsub/s.txt", "main.c"]);
      assert.equal(readFileSync(join(report.source, "main.c"), "utf8"), "edited, not committed\n");
      assert.equal(readFileSync(join(report.source, "libsub", "s.txt"), "utf8"), "from the submodule\n");
      assert.equal(
        readFileSync(join(report.built[0] ?? "", "share", "xfsprogs", "src", "main.c"), "utf8"),
        "edited, not committed\n",
        "the package was built from it",
      );
      assert.equal(git(tree, "status", "--porcelain"), status, "the tree, its index and its files are as they were");
      assert.equal(git(tree, "rev-parse", "HEAD"), head);
      assert.equal(git(tree, "stash", "list"), "", "the user's stash list is untouched");

      // Unchanged, the tree is the same rev (and lock); an edit moves it at the next lock, as a directory's does.
      const locked = () => {
        const lock = JSON.parse(readFileSync(join(rendered.config_dir, "flake.lock"), "utf8"));
        const { rev, narHash } = lock.nodes["xfsprogs-src"].locked;
        return { rev, narHash };
      };
      const first = locked();
      await steps.lock(rendered.config_dir);
      assert.deepEqual(locked(), first);
      writeFileSync(join(tree, "main.c"), "edited again\n");
      await steps.lock(rendered.config_dir);
      const rebuilt = await steps.build(rendered.config_dir);
      assert.notEqual(rebuilt.overrides[0]?.source, report.source);
      assert.equal(readFileSync(join(rebuilt.overrides[0]?.source ?? "", "main.c"), "utf8"), "edited again\n");

      // Taken whole, the same tree brings everything (once its private file is gone: root may not publish it).
      rmSync(join(tree, ".env"));
      const whole = captureLog();
      const wholeDir = (
        await vmSteps(bench(), { log: whole }).render({
          ...input,
          vm_name: "whole-tree-vm",
          overrides: [{ pkg: "xfsprogs", src: tree, kind: "path" }],
        })
      ).config_dir;
      assert.equal(whole.text().match(/is a git work tree, copied whole as a plain directory \(kind "path"\)/g)?.length, 1);
      await steps.lock(wholeDir);
      const copied = (await steps.build(wholeDir)).overrides[0];
      assert.equal(copied?.kind, "path");
      assert.ok(files(copied?.source ?? "").includes("build/main.o") && files(copied?.source ?? "").includes(".git/HEAD"));
    });

    test("a work tree with no commit yet is refused by name; kind path takes it", async () => {
      const tree = join(bench().root, "src", `fresh-${process.pid}`);
      mkdirSync(tree, { recursive: true });
      git(tree, "init", "-q");
      writeFileSync(join(tree, "main.c"), "new\n");
      const input = (kind?: "path"): RenderInput => ({
        vm_name: "fresh-tree-vm",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src: tree, ...(kind ? { kind } : {}) }],
      });
      await assert.rejects(
        vmSteps(bench()).render(input()),
        (e: Error) => e instanceof InputError && /overrides\[0\]\.src: .* is a git work tree with no commit yet/.test(e.message),
      );
      assert.equal(existsSync(join(bench().workersDir, "0", "nix", "fresh-tree-vm")), false, "nothing was written");
      await vmSteps(bench()).render(input("path"));
    });
  });
}

/** Runs git in `dir` as a test's user would (a fixed identity), returning what it printed. */
function git(dir: string, ...args: string[]): string {
  return execFileSync("git", ["-C", dir, "-c", "user.name=test", "-c", "user.email=test@nixos-closure.invalid", ...args], {
    encoding: "utf8",
  });
}

/**
 * The git setting of a user whose submodules are local directories: git
 * refuses file:// transport for submodules since 2.38.1, and Nix before
 * 2.20 fetches submodules with git (later ones read them with libgit2).
 */
const ALLOW_LOCAL_SUBMODULES = {
  GIT_CONFIG_COUNT: "1",
  GIT_CONFIG_KEY_0: "protocol.file.allow",
  GIT_CONFIG_VALUE_0: "always",
};
