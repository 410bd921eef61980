// What an operator sees around a long build, with the real nix: the plan
// before, progress during, the closure report and GC roots after.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { drvName } from "../../f/nix/lib/build/plan.ts";
import { parseGcRoots } from "../../f/nix/lib/nix/operations.ts";
import { nixSync, testNixes } from "../helpers/nix.ts";
import { captureLog, type StepOptions, vmSteps } from "../helpers/steps.ts";
import { useWorkbench } from "../helpers/workbench.ts";

for (const nix of testNixes()) {
  const modern = !/\(Nix\) 2\.([0-9]|1[0-8])\./.test(nix.version);
  describe(`plan, progress, report and GC roots with ${nix.version}`, () => {
    const bench = useWorkbench(nix);
    const lockConfig = (dir: string) => vmSteps(bench()).lock(dir);
    const build = (dir: string, options: StepOptions = {}) => vmSteps(bench(), options).build(dir);
    const plan = (dir: string) => vmSteps(bench()).plan(dir);
    const render = (profiles: ("devel" | "build-tools")[]) =>
      vmSteps(bench())
        .render({ vm_name: "report-vm", profiles, test_suites: ["fstests"] })
        .then((r) => r.config_dir);

    test("the plan of a fresh build is what the build then builds; progress and the report match", async () => {
      // A library change of this run's own makes every derivation of the system new.
      execFileSync("sed", [
        "-i",
        `s/kdevops-tools-0.1/kdevops-tools-0.1-${process.pid}-${Date.now()}/`,
        join(bench().libraryDir, "flake.nix"),
      ]);
      const dir = await render(["devel"]);
      await lockConfig(dir);
      const planned = await plan(dir);
      assert.ok(planned.plan.derivations.length >= 3, `derivations planned: ${planned.plan.derivations.join(", ")}`);
      assert.ok(planned.plan.derivations.every((d) => /^\/nix\/store\/[a-z0-9]{32}-.*\.drv$/.test(d)));
      assert.equal(existsSync(join(dir, "result")), false, "a plan builds nothing");

      const log = captureLog();
      const built = await build(dir, { log });
      const stderr = log.text();
      assert.deepEqual([...built.built].sort(), [...planned.plan.derivations].sort(), "built exactly the plan");
      if (modern)
        assert.deepEqual(
          [...(built.plan?.derivations ?? [])].sort(),
          [...planned.plan.derivations].sort(),
          "Nix's own plan, as it started",
        );
      else assert.equal(built.plan, null, "Nix before 2.19 reports no plan as it starts");

      // A job log (not a terminal): plain progress lines, no terminal control, no raw events; one summary line.
      assert.match(stderr, /^\[\d\d:\d\d\] evaluating$/m);
      assert.match(stderr, new RegExp(`^built ${built.built.length} derivations in \\d+\\.\\d s$`, "m"));
      assert.doesNotMatch(stderr, /@nix \{|\r|\x1b\[/);
      if (modern) assert.match(stderr, new RegExp(`^plan: ${planned.plan.derivations.length} derivations to build: `, "m"));

      assert.ok(built.timing.evaluation_seconds !== null && built.timing.evaluation_seconds >= 0);
      assert.ok(built.timing.build_seconds !== null && built.timing.build_seconds >= 0);
      assert.ok(built.timing.total_seconds >= built.timing.evaluation_seconds);

      // The closure report agrees with nix path-info.
      const closure = JSON.parse(nixSync(nix, ["path-info", "--json", "--recursive", built.toplevel]));
      const infos: { narSize: number }[] = Array.isArray(closure) ? closure : Object.values(closure);
      assert.equal(built.closure.paths, infos.length);
      assert.equal(
        built.closure.nar_size,
        infos.reduce((n, i) => n + i.narSize, 0),
      );
      assert.equal(built.closure.largest.length, Math.min(10, infos.length));
      const sizes = built.closure.largest.map((l) => l.nar_size);
      assert.deepEqual(
        sizes,
        [...sizes].sort((a, b) => b - a),
      );
      assert.equal(built.closure.previous, undefined);
      assert.equal(built.closure.diff, undefined);
    });

    test("a rebuild with one change: its plan, the diff from the previous closure, and both closures rooted", async () => {
      const dir = await render(["devel"]);
      const first = await build(dir);
      const dir2 = await render(["devel", "build-tools"]);
      assert.equal(dir2, dir);
      const planned = await plan(dir);
      const names = planned.plan.derivations.map(drvName);
      assert.ok(
        names.some((n) => n.startsWith("system-path")) && names.some((n) => n.startsWith("nixos-system-report-vm")),
        names.join(", "),
      );
      assert.ok(!names.some((n) => n.startsWith("kdevops-tools-")), "what did not change is not rebuilt");

      const second = await build(dir);
      assert.deepEqual([...second.built].sort(), [...planned.plan.derivations].sort(), "built exactly the plan");
      assert.equal(second.closure.previous, first.toplevel);
      const diff = second.closure.diff;
      assert.ok(diff);
      assert.ok(diff.added.includes(second.toplevel));
      assert.ok(diff.removed.includes(first.toplevel));
      assert.ok(diff.added.some((p) => /-gcc-14\.2$/.test(p)));
      assert.deepEqual(
        diff.changes.filter((c) => ["gcc", "gnumake", "autoconf"].includes(c.name)).map((c) => [c.name, c.from, c.to]),
        [
          ["autoconf", [], ["2.72"]],
          ["gcc", [], ["14.2"]],
          ["gnumake", [], ["4.4.1"]],
        ],
      );
      assert.doesNotMatch(JSON.stringify(diff.changes), /\\u001b|\x1b/, "no terminal escapes in the data");

      // Both closures are GC roots: a garbage collection of exactly these paths deletes neither.
      assert.equal(readlinkSync(join(dir, "result")), second.toplevel);
      assert.equal(readlinkSync(join(dir, "result-previous")), first.toplevel);
      const roots = parseGcRoots(execFileSync(join(nix.bin, "nix-store"), ["--gc", "--print-roots"], { encoding: "utf8" }));
      const rooted = (link: string, target: string) => roots.some((root) => root.link === link && root.target === target);
      assert.ok(rooted(join(dir, "result"), second.toplevel), "result is a registered root");
      assert.ok(rooted(join(dir, "result-previous"), first.toplevel), "result-previous is a registered root");
      for (const path of [first.toplevel, second.toplevel]) {
        assert.throws(() => nixSync(nix, ["store", "delete", path]), /still alive/, `${path} must be kept`);
        assert.ok(existsSync(path));
      }
      // The root is what kept it: without result-previous the old closure can go.
      rmSync(join(dir, "result-previous"));
      nixSync(nix, ["store", "delete", first.toplevel]);
      assert.equal(existsSync(first.toplevel), false);
      assert.ok(existsSync(second.toplevel));
    });

    test("a package that grows: its size delta as Nix reports it, without Nix's colours", async () => {
      const src = join(bench().root, "src", "fio-growing");
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, "salt"), `${process.pid}-${Date.now()}`);
      writeFileSync(join(src, "data"), "a".repeat(16 * 1024));
      const steps = vmSteps(bench());
      const input = {
        vm_name: "growing-vm",
        profiles: ["devel" as const],
        test_suites: ["fstests" as const],
        overrides: [{ pkg: "fio", src }],
      };
      const first = await steps.renderLockBuild(input);
      writeFileSync(join(src, "data"), "b".repeat(160 * 1024));
      await steps.lock(first.config_dir);
      const second = await steps.build(first.config_dir);
      const fio = second.closure.diff?.changes.find((c) => c.name === "fio");
      assert.ok(fio, JSON.stringify(second.closure.diff?.changes));
      assert.ok(fio.size_delta !== null && fio.size_delta > 140 * 1024 && fio.size_delta < 150 * 1024, JSON.stringify(fio));
      assert.doesNotMatch(JSON.stringify(second.closure.diff), /\\u001b/, "no terminal escapes in the data");
    });

    test("a no-op rebuild: an empty plan, the same toplevel, an empty diff", async () => {
      const dir = await render(["devel", "build-tools"]);
      const planned = await plan(dir);
      assert.deepEqual(planned.plan.derivations, []);
      assert.deepEqual(planned.plan.fetch, []);
      const again = await build(dir);
      assert.deepEqual(again.built, []);
      assert.equal(again.closure.previous, again.toplevel);
      assert.deepEqual(again.closure.diff, { added: [], removed: [], added_size: 0, removed_size: 0, changes: [] });
    });

    test("with progress off, Nix's own output passes through unchanged", async () => {
      const dir = await render(["devel"]);
      const log = captureLog();
      const value = await build(dir, { log, env: { NIXOS_CLOSURE_PROGRESS: "off" } });
      assert.doesNotMatch(log.text(), /^\[\d\d:\d\d\] /m);
      assert.doesNotMatch(log.text(), /--log-format internal-json/);
      assert.match(log.text(), /^\+ NO_COLOR=1 .*nix .* build 'path:.*report-vm#toplevel' --json --out-link \S+$/m);
      assert.equal(value.timing.evaluation_seconds, null);
      assert.match(value.toplevel, /^\/nix\/store\/[a-z0-9]{32}-nixos-system-report-vm-/);
    });
  });
}
