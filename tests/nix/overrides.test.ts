// Source overrides that provably reach the closure, with the real nix: a
// typo, an override nothing uses, an optional one, and a good one whose
// source and the paths built from it the result shows.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
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
      assert.match(log.text(), new RegExp(`override xfsprogs: ${report.source} builds .*-xfsprogs-6\\.13\\.0`));

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
  });
}
