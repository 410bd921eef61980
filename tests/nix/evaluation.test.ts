// Evaluate once: a rebuild of unchanged inputs, and VMs equal but for their
// name (hostname_at_boot), evaluate nothing; everything the evaluation
// depends on changes the key; records that are not ours, or whose system
// was collected, are never served. The stand-in nixpkgs is weighed, so every
// evaluation leaves one trace line in the log: evaluations are counted.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { forgetCollected } from "../../f/nix/lib/build/evaluation_record.ts";
import type { RenderInput } from "../../f/nix/lib/config/model.ts";
import { buildClosure } from "../../f/nix/lib/steps/building.ts";
import { lockConfig } from "../../f/nix/lib/steps/locking.ts";
import { ED25519 } from "../helpers/golden_cases.ts";
import { nixSync, ownName, type TestNix, testNixes } from "../helpers/nix.ts";
import {
  type CapturedLog,
  captureLog,
  isFlocked,
  type StepOptions,
  testContext,
  vmSteps,
  waitFor,
  within,
} from "../helpers/steps.ts";
import { EVALUATION_TRACE, useWorkbench, type Workbench } from "../helpers/workbench.ts";

const CLI = join(ROOT, "dist", "nixos-closure.cjs");

/** Enough work that an evaluation is not free, little enough for a test. */
const WORK = 20_000;

const evaluations = (log: CapturedLog) => (log.text().match(EVALUATION_TRACE) ?? []).length;

/** Nix before 2.19 writes the branch into the first lock of a git input, and drops it on the next. */
function rewritesGitLock(nix: TestNix): boolean {
  const minor = Number(/ 2\.(\d+)/.exec(nix.version)?.[1] ?? 0);
  return minor < 19;
}

let nixCaches = 0;

/**
 * An empty cache directory for Nix. Nix keeps an evaluation cache of its own
 * for a `path:` flake, keyed by its files and their times (to the second):
 * a build of a config dir unchanged since the last one, in the same second,
 * is served from it, without a trace. With an empty one, Nix evaluates
 * whenever we let it, and its trace counts every evaluation.
 */
function emptyNixCache(wb: Workbench): Record<string, string> {
  return { XDG_CACHE_HOME: join(wb.root, "nix-caches", String(++nixCaches)) };
}

/**
 * A NIX_BIN (`dir`) whose `nix` waits for the file `gate` before it builds a
 * flake's toplevel (an evaluating build); the rest of `nix` at once.
 */
function gatedNix(nix: TestNix, dir: string, gate: string): string {
  mkdirSync(dir);
  for (const name of readdirSync(nix.bin).filter((n) => n.startsWith("nix-"))) symlinkSync(join(nix.bin, name), join(dir, name));
  writeFileSync(
    join(dir, "nix"),
    `#!/bin/sh\ncase "$*" in *"#toplevel"*) while [ ! -e '${gate}' ]; do sleep 0.05; done ;; esac\nexec '${join(nix.bin, "nix")}' "$@"\n`,
    { mode: 0o755 },
  );
  return dir;
}

/** The build evaluated (we did not serve a record): once, by the trace. */
function assertEvaluated(run: { result: { evaluated: boolean }; log: CapturedLog }, what = ""): void {
  assert.equal(run.result.evaluated, true, `${what} served from a record`);
  assert.equal(evaluations(run.log), 1, `${what}: no evaluation`);
}

/** Builds a VM's input (render, lock, build) with a log of its own, and Nix's cache empty; returns the result and that log. */
async function buildVm(wb: Workbench, input: RenderInput, options: StepOptions = {}) {
  const log = captureLog();
  const steps = vmSteps(wb, { ...options, log, env: { ...emptyNixCache(wb), ...options.env } });
  const rendered = await steps.render({ home: false, ...input });
  await steps.lock(rendered.config_dir);
  const result = await steps.build(rendered.config_dir);
  return { result, log, rendered };
}

/** The records (file names) of the evaluations a VM's builds made. */
function recordFiles(wb: Workbench, vm: string): string[] {
  const dir = join(wb.workersDir, "evaluations");
  if (!existsSync(dir)) return [];
  const by = (name: string) => {
    try {
      return JSON.parse(readFileSync(join(dir, name), "utf8")).evaluated_by;
    } catch {
      return null; // a record a test spoiled
    }
  };
  return readdirSync(dir).filter((name) => name.endsWith(".json") && by(name) === vm);
}

for (const nix of testNixes()) {
  describe(`evaluate once (${nix.version})`, () => {
    const workbench = useWorkbench(nix, {}, { evaluationWork: WORK });

    test("a rebuild of an unchanged VM evaluates nothing, and keeps all a build gives", async () => {
      const wb = workbench();
      const first = await buildVm(wb, { vm_name: "same", test_suites: ["fstests"] });
      assert.equal(evaluations(first.log), 1);
      assert.equal(first.result.evaluated, true);
      assert.equal(first.result.evaluated_by, "same");

      const again = await buildVm(wb, { vm_name: "same", test_suites: ["fstests"] });
      assert.equal(evaluations(again.log), 0, "the second build evaluated");
      assert.equal(again.result.evaluated, false);
      assert.equal(again.result.toplevel, first.result.toplevel);
      assert.equal(again.result.init, first.result.init);
      assert.equal(again.result.initrd, first.result.initrd);
      assert.deepEqual(again.result.built, []);
      assert.equal(again.result.timing.evaluation_seconds, 0);
      assert.equal(again.result.closure.paths, first.result.closure.paths);
      assert.equal(readlinkSync(join(again.result.config_dir, "result")), first.result.toplevel);
      assert.match(again.log.text(), /inputs unchanged since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: evaluation skipped/);
    });

    test("VMs equal but for their name share one evaluation and one system with hostname_at_boot", async () => {
      const wb = workbench();
      const a = await buildVm(wb, { vm_name: "named-a", hostname_at_boot: true, ssh_keys: [ED25519] });
      const b = await buildVm(wb, { vm_name: "named-b", hostname_at_boot: true, ssh_keys: [ED25519] });
      assert.equal(a.rendered.default, b.rendered.default, "the config files differ");
      assert.equal(a.rendered.flake, b.rendered.flake);
      assert.equal(evaluations(a.log) + evaluations(b.log), 1);
      assert.equal(b.result.evaluated, false);
      assert.equal(b.result.evaluated_by, "named-a");
      assert.equal(b.result.toplevel, a.result.toplevel);
      assert.deepEqual(a.result.kernel_params, ["systemd.hostname=named-a"]);
      assert.deepEqual(b.result.kernel_params, ["systemd.hostname=named-b"]);
      assert.deepEqual(b.rendered.kernel_params, ["systemd.hostname=named-b"]);
      const root = await vmSteps(wb, { log: captureLog() }).prepareRoot(b.result.config_dir);
      assert.deepEqual(root.kernel_params, ["systemd.hostname=named-b"], "a prepared root's result carries them too");
      assert.match(b.log.text(), /same inputs as named-a \(evaluated .*\): evaluation skipped/);
      // NixOS names a system without a host name "unnamed" and writes no /etc/hostname.
      assert.match(a.result.toplevel, /-nixos-system-unnamed-/);
      const evaluated = JSON.parse(readFileSync(join(a.result.toplevel, "etc", "evaluated.json"), "utf8"));
      assert.equal(evaluated.hostName, "");

      // Without the option each VM is its own system, named, with no kernel parameter to add.
      const c = await buildVm(wb, { vm_name: "named-c", ssh_keys: [ED25519] });
      assert.equal(evaluations(c.log), 1);
      assert.deepEqual(c.result.kernel_params, []);
      assert.match(c.result.toplevel, /-nixos-system-named-c-/);
    });

    test("every input the evaluation depends on makes it evaluate again", async () => {
      const wb = workbench();
      const base: RenderInput = { vm_name: "inputs", test_suites: ["fstests"] };
      const src = join(wb.root, "xfsprogs-src");
      mkdirSync(src);
      writeFileSync(join(src, "configure"), "#!/bin/sh\n");
      chmodSync(wb.root, 0o755);
      const withOverride: RenderInput = { ...base, overrides: [{ pkg: "xfsprogs", src }] };
      await buildVm(wb, base);
      const cases: [string, () => ReturnType<typeof buildVm>][] = [
        [
          "an SSH key",
          async () => {
            const run = await buildVm(wb, { ...base, ssh_keys: [ED25519] });
            assert.match(run.log.text(), /changed since this VM's last build: default\.nix; evaluating/);
            return run;
          },
        ],
        ["a profile", () => buildVm(wb, { ...base, ssh_keys: [ED25519], profiles: ["devel"] })],
        ["an override", () => buildVm(wb, { ...withOverride, ssh_keys: [ED25519], profiles: ["devel"] })],
        [
          "the override's source content",
          () => {
            writeFileSync(join(src, "configure"), "#!/bin/sh\n# edited\n");
            return buildVm(wb, { ...withOverride, ssh_keys: [ED25519], profiles: ["devel"] });
          },
        ],
        [
          "an evaluation setting the user gives Nix (NIX_CONFIG)",
          () =>
            buildVm(
              wb,
              { ...withOverride, ssh_keys: [ED25519], profiles: ["devel"] },
              { env: { NIX_CONFIG: `${wb.env.NIX_CONFIG}\nallow-import-from-derivation = false` } },
            ),
        ],
        [
          "a setting of the nix group",
          () =>
            buildVm(
              wb,
              { ...withOverride, ssh_keys: [ED25519], profiles: ["devel"] },
              { nix: { options: { "tarball-ttl": "7" } } },
            ),
        ],
      ];
      for (const [what, run] of cases) assertEvaluated(await run(), `${what} changed, yet it was`);
      // And each of those is recorded: the same inputs again evaluate nothing.
      const again = await buildVm(
        wb,
        { ...withOverride, ssh_keys: [ED25519], profiles: ["devel"] },
        { nix: { options: { "tarball-ttl": "7" } } },
      );
      assert.equal(evaluations(again.log), 0);
      assert.equal(again.result.overrides.length, 1, "the override's report comes with the record");
      assert.ok((again.result.overrides[0]?.built.length ?? 0) > 0);
    });

    test("a git work tree's edit makes a new key; the run's render holds while lock moves the snapshot", async () => {
      const wb = workbench();
      const tree = join(wb.root, `tree-${process.pid}`);
      mkdirSync(tree);
      const git = (...args: string[]) =>
        execFileSync("git", ["-C", tree, "-c", "user.name=t", "-c", "user.email=t@nixos-closure.invalid", ...args], {
          encoding: "utf8",
        });
      git("init", "-q");
      writeFileSync(join(tree, "configure"), "#!/bin/sh\n");
      git("add", ".");
      git("commit", "-qm", "first");
      const input: RenderInput = { vm_name: "tree", test_suites: ["fstests"], overrides: [{ pkg: "xfsprogs", src: tree }] };
      const first = await buildVm(wb, input);
      assertEvaluated(first);
      // Nix before 2.19 writes the branch into the first lock of a git input and drops it on the next:
      // one more key there, then none.
      const again = await buildVm(wb, input);
      if (!rewritesGitLock(nix)) assert.equal(evaluations(again.log), 0, "an unchanged tree evaluated again");
      const third = await buildVm(wb, input);
      assert.equal(evaluations(third.log), 0, "an unchanged tree evaluated again");
      // Rendered, then the tree edited (uncommitted) before this run's lock and build.
      const steps = vmSteps(wb, { log: captureLog() });
      const rendered = await steps.render({ home: false, ...input });
      writeFileSync(join(tree, "configure"), "#!/bin/sh\n# edited\n");
      const log = captureLog();
      await lockConfig(testContext(wb, "lock_config", { log }), rendered.config_dir, false, rendered.render_id);
      const built = await buildClosure(
        testContext(wb, "build_closure", { log, env: emptyNixCache(wb) }),
        rendered.config_dir,
        [],
        rendered.render_id,
      );
      assertEvaluated({ result: built, log }, "the edited tree");
      assert.notEqual(built.overrides[0]?.source, first.result.overrides[0]?.source);
    });

    test("update_lock bringing a new library evaluates again", async () => {
      const wb = workbench();
      const first = await buildVm(wb, { vm_name: "library" });
      assert.equal(evaluations(first.log), 1);
      const module = join(wb.libraryDir, "modules", "profiles", "devel.nix");
      const steps = vmSteps(wb, { log: captureLog() });
      const unchanged = captureLog();
      await vmSteps(wb, { log: unchanged }).build(first.result.config_dir);
      assert.equal(evaluations(unchanged), 0);
      writeFileSync(module, `${readFileSync(module, "utf8")}\n# a change of the library\n`);
      await steps.lock(first.result.config_dir, true);
      const log = captureLog();
      const result = await vmSteps(wb, { log }).build(first.result.config_dir);
      assert.equal(evaluations(log), 1);
      assert.equal(result.evaluated, true);
    });

    test("eval-cache = false evaluates whatever the record says, and mends a record that named another system", async () => {
      const wb = workbench();
      const right = await buildVm(wb, { vm_name: "forced" });
      const other = await buildVm(wb, { vm_name: "forced-other" });
      // A record gone wrong (say, a key that missed an input): it names another VM's system.
      const [name] = recordFiles(wb, "forced");
      assert.ok(name);
      const record = join(wb.workersDir, "evaluations", name);
      writeFileSync(record, JSON.stringify({ ...JSON.parse(readFileSync(record, "utf8")), toplevel: other.result.toplevel }));
      const served = await buildVm(wb, { vm_name: "forced" });
      assert.equal(served.result.toplevel, other.result.toplevel, "the spoiled record was not served");
      const forced = await buildVm(wb, { vm_name: "forced" }, { nix: { options: { "eval-cache": "false" } } });
      assert.equal(evaluations(forced.log), 1);
      assert.equal(forced.result.evaluated, true);
      assert.equal(forced.result.toplevel, right.result.toplevel);
      assert.match(forced.log.text(), /eval-cache is off: evaluating/);
      assert.match(
        forced.log.text(),
        /the record of these inputs named .*-nixos-system-forced-other-.*, but evaluating them gave/,
      );
      // The record is mended: the next build, eval-cache on, serves the right system.
      const mended = await buildVm(wb, { vm_name: "forced" });
      assert.equal(evaluations(mended.log), 0);
      assert.equal(mended.result.toplevel, right.result.toplevel);
      const byNixConf = await buildVm(
        wb,
        { vm_name: "forced" },
        { env: { NIX_CONFIG: `${wb.env.NIX_CONFIG}\neval-cache = false` } },
      );
      assert.equal(evaluations(byNixConf.log), 1);
    });

    test("a record that is foreign, corrupt, cut short, a link, or in a directory others may write is never served", async () => {
      const wb = workbench();
      const first = await buildVm(wb, { vm_name: "records" });
      const [name] = recordFiles(wb, "records");
      assert.ok(name, "no record was written");
      const records = join(wb.workersDir, "evaluations");
      const record = join(records, name);
      const good = readFileSync(record, "utf8");
      const elsewhere = join(wb.root, "elsewhere.json");
      writeFileSync(elsewhere, good);
      const bad: [string, () => void][] = [
        ["foreign", () => writeFileSync(record, JSON.stringify({ ...JSON.parse(good), by: "someone-else" }))],
        ["corrupt", () => writeFileSync(record, "\u0000\u0001 not json")],
        ["cut short", () => writeFileSync(record, good.slice(0, good.length / 2))],
        ["of another key", () => writeFileSync(record, JSON.stringify({ ...JSON.parse(good), key: "0".repeat(64) }))],
        [
          "naming another system",
          () => writeFileSync(record, JSON.stringify({ ...JSON.parse(good), toplevel: "/nix/store/not-a-store-path" })),
        ],
        [
          "a link",
          () => {
            rmSync(record);
            symlinkSync(elsewhere, record);
          },
        ],
        ["group-writable", () => chmodSync(record, 0o664)],
        [
          "naming a VM with escapes",
          () => writeFileSync(record, JSON.stringify({ ...JSON.parse(good), evaluated_by: "\u001b[2J\nerror: fake" })),
        ],
        ["in a directory others may write", () => chmodSync(records, 0o777)],
      ];
      for (const [what, spoil] of bad) {
        rmSync(record, { force: true });
        writeFileSync(record, good, { mode: 0o644 });
        chmodSync(record, 0o644);
        chmodSync(records, 0o755);
        spoil();
        const run = await buildVm(wb, { vm_name: "records" });
        assertEvaluated(run, `a ${what} record`);
        assert.equal(run.result.toplevel, first.result.toplevel);
      }
      chmodSync(records, 0o755);
      assert.equal(readFileSync(elsewhere, "utf8"), good, "the link's target was written");
    });

    test("something not ours where a key's lock goes costs an evaluation, never the build", async () => {
      const wb = workbench();
      const first = await buildVm(wb, { vm_name: "stray-lock", profiles: [], test_suites: [] });
      const [name] = recordFiles(wb, "stray-lock");
      assert.ok(name);
      const records = join(wb.workersDir, "evaluations");
      rmSync(join(records, name));
      const lock = join(records, name.replace(/\.json$/, ".lock"));
      execFileSync("mkfifo", [lock]);
      const again = await buildVm(wb, { vm_name: "stray-lock", profiles: [], test_suites: [] });
      assertEvaluated(again);
      assert.equal(again.result.toplevel, first.result.toplevel);
      rmSync(lock);
    });

    test("a record whose system was collected evaluates and builds again", async () => {
      const wb = workbench();
      // A system of this run's own: another run's build of the same one would keep it alive.
      const collected = ownName("collected");
      const first = await buildVm(wb, { vm_name: collected, profiles: [], test_suites: [] });
      rmSync(join(first.result.config_dir, "result"));
      nixSync(nix, ["store", "delete", first.result.toplevel]);
      assert.equal(existsSync(first.result.toplevel), false);
      // What gc --collect does after Nix's collector: the record of a system gone is forgotten, the others stay.
      const others = readdirSync(join(wb.workersDir, "evaluations")).length;
      assert.ok(forgetCollected(join(wb.workersDir, "evaluations")) >= 1);
      assert.deepEqual(recordFiles(wb, collected), []);
      assert.ok(readdirSync(join(wb.workersDir, "evaluations")).length < others);
      const again = await buildVm(wb, { vm_name: collected, profiles: [], test_suites: [] });
      assertEvaluated(again);
      assert.equal(again.result.toplevel, first.result.toplevel);
      assert.ok(existsSync(again.result.toplevel));
    });

    test("runs of one system at once evaluate it once; the others wait for it", async () => {
      const wb = workbench();
      const names = ["once-a", "once-b", "once-c"];
      const logs = names.map(() => captureLog());
      const rendered = [];
      for (const [i, vm_name] of names.entries()) {
        const steps = vmSteps(wb, { log: logs[i] });
        const r = await steps.render({ vm_name, hostname_at_boot: true, home: false });
        await steps.lock(r.config_dir);
        rendered.push(r);
      }
      // One Nix for the three, whose evaluating build waits at a gate: the run that evaluates holds the key's lock
      // until the other two are waiting for it, however slowly the machine lets them start.
      const gate = join(wb.root, "evaluation-gate");
      const gated = gatedNix(nix, join(wb.root, "gated-nix"), gate);
      const building = Promise.all(
        rendered.map((r, i) => vmSteps(wb, { log: logs[i], env: { NIX_BIN: gated } }).build(r.config_dir)),
      );
      // (Named by the holder, or "another run" when a waiter looked between the holder's lock and its name.)
      const waiting = () =>
        logs.filter((log) => /waiting for (once-[abc]|another run)'s evaluation of the same system/.test(log.text()));
      await waitFor(
        120_000,
        "two runs to wait for the third's evaluation",
        () => waiting().length === 2,
        () => writeFileSync(gate, ""),
      );
      writeFileSync(gate, "");
      const results = await within(120_000, "three builds at once", building);
      assert.equal(
        logs.reduce((n, log) => n + evaluations(log), 0),
        1,
      );
      assert.equal(results.filter((r) => r.evaluated).length, 1);
      assert.equal(new Set(results.map((r) => r.toplevel)).size, 1);
    });

    test("three CLI processes building VMs of one system at once evaluate it once", async () => {
      const wb = workbench();
      const cli = (vm: string) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(
            process.execPath,
            [CLI, "build", "--hostname-at-boot", "--vm-name", vm, "--no-home", "--profile", "none", "--test-suite", "ltp"],
            { env: wb.env, stdio: ["ignore", "ignore", "pipe"] },
          );
          let stderr = "";
          child.stderr.on("data", (chunk) => {
            stderr += chunk;
          });
          child.on("exit", (code) => resolve({ code, stderr }));
        });
      const runs = await within(180_000, "three CLI builds", Promise.all(["proc-a", "proc-b", "proc-c"].map(cli)));
      for (const run of runs) assert.equal(run.code, 0, run.stderr);
      const traces = runs.reduce((n, run) => n + (run.stderr.match(EVALUATION_TRACE) ?? []).length, 0);
      assert.equal(traces, 1, runs.map((run) => run.stderr).join("\n-----\n"));
      assert.equal(runs.filter((run) => /evaluation skipped, its system shared/.test(run.stderr)).length, 2);
    });

    test("a run whose holder died evaluates itself", async () => {
      const wb = workbench();
      const first = await buildVm(wb, { vm_name: "holder", profiles: [], test_suites: [] });
      const [name] = recordFiles(wb, "holder");
      assert.ok(name);
      const key = name.replace(/\.json$/, "");
      const records = join(wb.workersDir, "evaluations");
      rmSync(join(records, name));
      // Another run holds the key's lock (as evaluating), then dies.
      const lockFile = join(records, `${key}.lock`);
      writeFileSync(lockFile, "");
      // Its own process group: flock and the sleep holding the lock die together.
      const holder = spawn("flock", ["--exclusive", lockFile, "sleep", "60"], { stdio: "ignore", detached: true });
      await waitFor(
        10_000,
        "the other run to hold the key's lock",
        () => isFlocked(lockFile),
        () => process.kill(-(holder.pid as number), "SIGKILL"),
      );
      const log = captureLog();
      const build = buildClosure(testContext(wb, "build_closure", { log, env: emptyNixCache(wb) }), first.result.config_dir);
      await waitFor(30_000, "the build to wait for the holder", () => /evaluation of the same system/.test(log.text()));
      process.kill(-(holder.pid as number), "SIGKILL");
      const result = await within(60_000, "the build after its holder died", build);
      assertEvaluated({ result, log });
      assert.deepEqual(recordFiles(wb, "holder"), [name], "the evaluation is recorded again");
    });

    test("a run that lost its render to another run of the same VM stops, changing nothing", async () => {
      const wb = workbench();
      const steps = vmSteps(wb, { log: captureLog() });
      const mine = await steps.render({ vm_name: "shared-name", ssh_keys: [ED25519], home: false });
      await steps.lock(mine.config_dir);
      const built = await steps.build(mine.config_dir);
      const theirs = await steps.render({ vm_name: "shared-name", home: false });
      assert.notEqual(theirs.render_id, mine.render_id);
      const lockBefore = readFileSync(join(mine.config_dir, "flake.lock"), "utf8");
      await assert.rejects(
        lockConfig(testContext(wb, "lock_config"), mine.config_dir, false, mine.render_id),
        /rendered again, with other inputs, by another run/,
      );
      await assert.rejects(
        buildClosure(testContext(wb, "build_closure"), mine.config_dir, [], mine.render_id),
        /rendered again, with other inputs, by another run/,
      );
      assert.equal(readFileSync(join(mine.config_dir, "flake.lock"), "utf8"), lockBefore);
      assert.equal(readlinkSync(join(mine.config_dir, "result")), built.toplevel);
      // Their own run goes on, and equal inputs agree.
      await lockConfig(testContext(wb, "lock_config"), theirs.config_dir, false, theirs.render_id);
      const again = await steps.render({ vm_name: "shared-name", home: false });
      assert.equal(again.render_id, theirs.render_id);
    });
  });
}

/** The same VM built by one Nix and then another: the second evaluates (the key names the Nix). */
const [first, second] = testNixes() as (TestNix | undefined)[];
if (first && second) {
  describe(`another Nix evaluates again (${first.version}, then ${second.version})`, () => {
    const workbench = useWorkbench(first, {}, { evaluationWork: WORK });
    test("the key names the Nix binary and its version", async () => {
      const wb = workbench();
      const one = await buildVm(wb, { vm_name: "two-nixes" });
      assert.equal(evaluations(one.log), 1);
      const other = await buildVm(wb, { vm_name: "two-nixes" }, { env: { NIX_BIN: second.bin } });
      assert.equal(evaluations(other.log), 1);
      assert.equal(other.result.toplevel, one.result.toplevel, "two Nix versions built two systems");
    });
  });
}
