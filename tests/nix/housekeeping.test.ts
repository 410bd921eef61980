// The VMs on a worker, with the real nix: listing them, removing them (only
// theirs), collecting the stale ones, and comparing systems.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  lchownSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { formatVms } from "../../cli/output.ts";
import { parseDiffClosures, type VersionChange } from "../../f/nix/lib/build/report.ts";
import { InputError, SetupError } from "../../f/nix/lib/core/errors.ts";
import { parseGcRoots } from "../../f/nix/lib/nix/operations.ts";
import { type Collection, cleanUpVms, diffSystems, listVms } from "../../f/nix/lib/steps/vms.ts";
import { withDirLock } from "../../f/nix/lib/worker/dir_lock.ts";
import { configDirCaches } from "../../f/nix/lib/worker/layout.ts";
import { main as listStep } from "../../f/nix/list.ts";
import { main as removeStep } from "../../f/nix/remove.ts";
import { nixSync, ownName, type TestNix, testNixes } from "../helpers/nix.ts";
import { asWorker, captureLog, holdLock, lockHolder, testContext, vmSteps, waitFor, within } from "../helpers/steps.ts";
import { createWorkbench, snapshot, useWorkbench } from "../helpers/workbench.ts";

/**
 * Our diff is Nix's: the same packages and versions, and each size the exact
 * figure Nix printed rounded (to 0.1 of its unit: KiB, or from 2.34 a larger one).
 */
function assertNixDiff(changes: readonly VersionChange[], printed: string): void {
  const nix = parseDiffClosures(printed);
  const shape = (list: readonly VersionChange[]) => list.map((c) => ({ ...c, size_delta: c.size_delta !== null }));
  assert.deepEqual(shape(changes), shape(nix));
  nix.forEach((change, i) => {
    if (change.size_delta === null) return;
    const ours = changes[i]?.size_delta as number;
    const unit = 1024 ** Math.max(1, Math.floor(Math.log(Math.abs(change.size_delta)) / Math.log(1024)));
    assert.ok(Math.abs(ours - change.size_delta) <= 0.05 * unit + 1, `${change.name}: ${ours} is not ${printed}`);
  });
}

/**
 * A NIX_BIN whose `nix-store --gc` collects the store at `store` (a chroot
 * store of the test's own); every other command, listing the roots
 * included, runs as it is on the machine's store.
 */
function collectingIn(nix: TestNix, store: string): string {
  const bin = join(store, "..", "collecting-nix");
  mkdirSync(bin, { recursive: true });
  symlinkSync(join(nix.bin, "nix"), join(bin, "nix"));
  const real = join(nix.bin, "nix-store");
  writeFileSync(
    join(bin, "nix-store"),
    `#!/bin/sh
case " $* " in
*" --print-roots "* | *" --print-live "* | *" --print-dead "*) ;;
*" --gc "*) exec ${real} --store 'local?root=${store}' "$@" ;;
esac
exec ${real} "$@"
`,
    { mode: 0o755 },
  );
  return bin;
}

for (const nix of testNixes()) {
  describe(`housekeeping with ${nix.version}`, () => {
    const bench = useWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
    const context = () => testContext(bench(), "housekeeping");
    // Every Nix version, and every other run of the suite on the machine, shares the store: a name of this run and
    // version's own keeps this system out of the others' GC roots, so the bytes only it holds are its own.
    const version = nix.version.replace(/\D+/g, "-").replace(/^-|-$/g, "");
    const builtName = ownName(`hk-built-${version}`);
    const goneName = ownName(`hk-gone-${version}`);
    // Listed twice and compared to the byte: its system is the run's own, so no other run's roots change its sizes.
    const rootedName = ownName(`hk-rooted-${version}`);
    // `link -> path` lines, the links unquoted (Nix 2.34 quotes them).
    const nixSyncRoots = () =>
      parseGcRoots(execFileSync(join(nix.bin, "nix-store"), ["--gc", "--print-roots"], { encoding: "utf8" }))
        .map((root) => `${root.link} -> ${root.target}`)
        .join("\n");

    test("list shows rendered, locked, built and root-prepared VMs, with their sizes", async () => {
      const steps = vmSteps(bench());
      await steps.render({ vm_name: "hk-rendered", profiles: [], test_suites: [] });
      const locked = await steps.render({ vm_name: "hk-locked", profiles: [], test_suites: [] });
      await steps.lock(locked.config_dir);
      const built = await steps.renderLockBuild({ vm_name: builtName, profiles: ["devel"], test_suites: [] });
      const rooted = await steps.renderLockBuild({ vm_name: rootedName, profiles: [], test_suites: ["fstests"] });
      await steps.prepareRoot(rooted.config_dir);
      const vms = new Map((await listVms(context())).map((vm) => [vm.vm_name, vm]));
      assert.equal(vms.get("hk-rendered")?.state, "rendered");
      assert.equal(vms.get("hk-locked")?.state, "locked");
      assert.equal(vms.get(builtName)?.state, "built");
      assert.equal(vms.get(rootedName)?.state, "root prepared");
      const b = vms.get(builtName);
      assert.ok(b);
      assert.equal(b.toplevel, built.toplevel);
      assert.equal(b.closure_size, built.closure.nar_size);
      assert.ok(b.unique_size > 0 && b.unique_size <= b.closure_size, JSON.stringify(b));
      assert.deepEqual(b.gc_roots, [join(built.config_dir, "result")]);
      assert.equal(vms.get(rootedName)?.prepared_roots.length, 1);
      assert.deepEqual(await asWorker(bench(), () => listStep()), [...vms.values()], "the Windmill script lists the same");
    });

    test("remove takes exactly one VM's files and GC roots; refuses unknown names and a VM in use", async () => {
      const steps = vmSteps(bench());
      const gone = await steps.renderLockBuild({ vm_name: goneName, profiles: ["build-tools"], test_suites: [] });
      await steps.prepareRoot(gone.config_dir);
      const stays = await steps.renderLockBuild({ vm_name: "hk-stays", profiles: ["devel"], test_suites: [] });
      await assert.rejects(
        cleanUpVms(context(), { names: ["hk-nonexistent"] }),
        (e: Error) => e instanceof InputError && /not a VM of this worker/.test(e.message),
      );
      const held = await holdLock(stays.config_dir, "build_closure");
      try {
        await assert.rejects(
          asWorker(bench(), () => removeStep(["hk-stays"])),
          (e: Error) => e instanceof SetupError && /in use by build_closure; it was not removed/.test(e.message),
        );
      } finally {
        await held.release();
      }
      const dry = await cleanUpVms(context(), { names: [goneName], dryRun: true });
      assert.ok(existsSync(gone.config_dir), "a dry run removes nothing");
      assert.ok(dry.removed[0]?.frees && dry.removed[0].frees > 0);
      const done = await asWorker(bench(), () => removeStep([goneName]));
      assert.deepEqual(done.removed[0]?.removed.sort(), dry.removed[0]?.removed.sort());
      const caches = Object.values(configDirCaches(gone.config_dir));
      assert.ok(
        caches.some((cache) => done.removed[0]?.removed.includes(cache)),
        "its caches went with it",
      );
      for (const path of [gone.config_dir, `${gone.config_dir}.roots`, `${gone.config_dir}.lock`, ...caches])
        assert.equal(existsSync(path), false, path);
      const gcRoots = nixSyncRoots();
      assert.doesNotMatch(gcRoots, new RegExp(`${gone.config_dir}/result`));
      assert.match(gcRoots, new RegExp(`${stays.config_dir}/result -> ${stays.toplevel}`), "the other VM keeps its roots");
      assert.ok(existsSync(stays.config_dir));
    });

    test("remove takes every root a VM prepared, wherever it is, and nothing of another VM's; list shows them", async () => {
      const steps = vmSteps(bench());
      const a = await steps.renderLockBuild({ vm_name: "hk-roots-a", profiles: [], test_suites: [] });
      const b = await steps.renderLockBuild({ vm_name: "hk-roots-b", profiles: [], test_suites: [] });
      const outside = join(bench().root, "roots-a", "srv");
      await steps.prepareRoot(a.config_dir, "", outside);
      const inside = await steps.prepareRoot(a.config_dir);
      const current = await steps.prepareRoot(a.config_dir, "", outside);
      const theirs = await steps.prepareRoot(b.config_dir, "", join(bench().root, "roots-b", "srv"));
      const listed = (await listVms(context())).find((vm) => vm.vm_name === "hk-roots-a");
      assert.deepEqual(listed?.root_dirs.sort(), [inside.root_dir, outside].sort());
      assert.ok(listed?.prepared_roots.includes(current.generation) && listed.prepared_roots.includes(inside.generation));
      assert.match(formatVms(listed ? [listed] : []), new RegExp(`^prepared roots:\n  hk-roots-a  ${outside}$`, "m"));
      // A record naming another VM's root (by hand, or a stale one) takes nothing of it: its marker names that VM.
      const record = `${a.config_dir}.roots.json`;
      const recorded = JSON.parse(readFileSync(record, "utf8"));
      writeFileSync(record, JSON.stringify({ ...recorded, roots: [...recorded.roots, theirs.root_dir] }));
      const theirsBefore = snapshot(join(bench().root, "roots-b"));
      const done = await cleanUpVms(context(), { names: ["hk-roots-a"] });
      for (const path of [outside, `${outside}.generations`, `${outside}.lock`, record, `${a.config_dir}.roots`]) {
        assert.equal(existsSync(path), false, `${path} went with its VM`);
        if (path !== `${a.config_dir}.roots`) assert.ok(done.removed[0]?.removed.includes(path), `${path} is said`);
      }
      assert.deepEqual(readdirSync(join(bench().root, "roots-a")), []);
      assert.deepEqual(snapshot(join(bench().root, "roots-b")), theirsBefore, "the other VM's root is untouched");
      assert.equal(readlinkSync(theirs.root_dir), theirs.generation);
      assert.ok((await listVms(context())).find((vm) => vm.vm_name === "hk-roots-b")?.root_dirs.includes(theirs.root_dir));
    });

    test("remove never takes generations or a link another user owns, even marked as the VM's", async () => {
      const steps = vmSteps(bench());
      const a = await steps.renderLockBuild({ vm_name: "hk-foreign-roots", profiles: [], test_suites: [] });
      const place = join(bench().root, "hk-foreign");
      const theirs = join(place, "theirs");
      const linked = join(place, "linked");
      await steps.prepareRoot(a.config_dir, "", theirs);
      const kept = await steps.prepareRoot(a.config_dir, "", linked);
      // Another user's now, as the hostile tester's were: the same marker, naming this root and VM.
      execFileSync("chown", ["-R", "65534:65534", `${theirs}.generations`]);
      lchownSync(linked, 65534, 65534);
      const before = snapshot(place);
      const theirsBefore = [...before].filter(([path]) => path.startsWith(`${theirs}.generations/`));
      const done = await cleanUpVms(context(), { names: ["hk-foreign-roots"] });
      assert.equal(existsSync(a.config_dir), false, "the VM was removed");
      assert.deepEqual(
        [...snapshot(place)].filter(([path]) => path.startsWith(`${theirs}.generations/`)),
        theirsBefore,
        "their generations are untouched",
      );
      assert.ok(existsSync(join(`${theirs}.generations`, "1")));
      assert.equal(readlinkSync(linked), kept.generation, "their link stays");
      assert.equal(existsSync(`${linked}.generations`), false, "our generations went");
      for (const path of [`${theirs}.generations`, linked]) {
        assert.ok(!done.removed[0]?.removed.includes(path), `${path} is not said removed`);
      }
    });

    test("a removal killed midway leaves a VM that list shows and remove and gc finish", async () => {
      const steps = vmSteps(bench());
      const nixDir = join(bench().workersDir, "0", "nix");
      /** Runs the Windmill remove step under Bun for `vm`, and kills it with SIGKILL once `moment` holds. */
      const killRemoval = async (vm: string, moment: () => boolean, what: string) => {
        const code = `import { main } from ${JSON.stringify(join(ROOT, "f/nix/remove.ts"))}; await main([${JSON.stringify(vm)}]);`;
        const child = spawn(join(ROOT, "node_modules/.bin/bun"), ["-e", code], { env: bench().env, stdio: "ignore" });
        const exited = new Promise((resolve) => child.on("exit", resolve));
        await waitFor(60_000, what, moment, () => child.kill("SIGKILL"));
        child.kill("SIGKILL");
        await within(10_000, "the killed removal to exit", exited);
      };
      /** As many files as a real closure has, so that removing them takes long enough to be killed in. */
      const bulk = (dir: string) => {
        mkdirSync(dir);
        for (let i = 0; i < 30_000; i++) writeFileSync(join(dir, String(i)), "");
      };

      // Killed while its root goes: flake.nix is gone, the rest is there.
      const first = await steps.renderLockBuild({ vm_name: "hk-killed-root", profiles: [], test_suites: [] });
      const root = await steps.prepareRoot(first.config_dir, "", join(bench().root, "killed-root"));
      bulk(join(root.generation_dir, "bulk"));
      await killRemoval("hk-killed-root", () => !existsSync(join(first.config_dir, "flake.nix")), "the removal to start");
      assert.ok(existsSync(join(first.config_dir, "default.nix")), "killed before the end");
      // Killed after its GC roots went, while the rest of the config dir goes.
      const second = await steps.renderLockBuild({ vm_name: "hk-killed-late", profiles: [], test_suites: [] });
      bulk(join(second.config_dir, "bulk"));
      await killRemoval(
        "hk-killed-late",
        () => !existsSync(join(second.config_dir, "result")) && existsSync(join(second.config_dir, "bulk")),
        "the removal to take the GC roots",
      );

      const listed = new Map((await listVms(context())).map((vm) => [vm.vm_name, vm]));
      assert.equal(listed.get("hk-killed-root")?.state, "incomplete");
      if (existsSync(`${root.root_dir}.generations`))
        assert.deepEqual(listed.get("hk-killed-root")?.root_dirs, [root.root_dir], "what is left of its root is its own");
      assert.equal(listed.get("hk-killed-late")?.state, "incomplete");
      assert.deepEqual(listed.get("hk-killed-late")?.gc_roots, []);
      // Fresh, but a removal to finish: gc takes them whatever their age, and never counts them among those kept.
      const dry = await cleanUpVms(context(), { olderThanDays: 30, keep: 100, dryRun: true });
      assert.deepEqual(dry.removed.map((r) => r.vm_name).sort(), ["hk-killed-late", "hk-killed-root"]);
      const byName = await asWorker(bench(), () => removeStep(["hk-killed-root"]));
      assert.equal(byName.removed[0]?.vm_name, "hk-killed-root");
      const byAge = await cleanUpVms(context(), { olderThanDays: 30 });
      assert.deepEqual(
        byAge.removed.map((r) => r.vm_name),
        ["hk-killed-late"],
      );
      for (const dir of [first.config_dir, second.config_dir])
        assert.deepEqual(
          readdirSync(nixDir).filter((n) => n === basename(dir) || n.startsWith(`${basename(dir)}.`)),
          [],
          `nothing of ${basename(dir)} is left`,
        );
      for (const path of [root.root_dir, `${root.root_dir}.generations`, `${root.root_dir}.lock`])
        assert.equal(existsSync(path), false, path);
    });

    test("gc removes VMs not built for a while, keeps the most recent ones, and collects", async () => {
      const steps = vmSteps(bench());
      const names = ["hk-old1", "hk-old2", "hk-new"];
      for (const vm_name of names) await steps.renderLockBuild({ vm_name, profiles: [], test_suites: [] });
      const ago = (days: number) => new Date(Date.now() - days * 24 * 3600 * 1000);
      const age = (vm: string, days: number) => {
        const dir = join(bench().workersDir, "0", "nix", vm);
        lutimesSync(join(dir, "result"), ago(days), ago(days));
        utimesSync(join(dir, "default.nix"), ago(days), ago(days));
      };
      age("hk-old1", 40);
      age("hk-old2", 50);
      const result = await cleanUpVms(context(), { olderThanDays: 30, keep: 1 });
      const removed = result.removed.map((r) => r.vm_name);
      assert.ok(removed.includes("hk-old1") && removed.includes("hk-old2"), removed.join(", "));
      assert.ok(!removed.includes("hk-new"));
      const kept = await cleanUpVms(context(), { olderThanDays: 0.0001, keep: 100 });
      assert.deepEqual(kept.removed, [], "keep protects the most recent");
    });

    test("--all-workers lists every slot; --keep-root keeps the roots; collect runs the garbage collector", async () => {
      const other = await vmSteps(bench(), { env: { WORKER_INDEX: "1" } }).renderLockBuild({
        vm_name: "hk-slot1",
        profiles: [],
        test_suites: [],
      });
      assert.ok(!(await listVms(context())).some((vm) => vm.vm_name === "hk-slot1"), "another slot's VM is not this slot's");
      const all = await listVms(context(), true);
      assert.deepEqual(
        all.filter((vm) => vm.vm_name === "hk-slot1").map((vm) => [vm.worker, vm.config_dir]),
        [["1", other.config_dir]],
      );
      const kept = await vmSteps(bench()).renderLockBuild({ vm_name: "hk-keep-root", profiles: ["devel"], test_suites: [] });
      const root = await vmSteps(bench()).prepareRoot(kept.config_dir);
      // Nix's collector runs on a store of this test's own, holding one path of garbage: collecting the machine's
      // store would take what other runs of the suite (and anyone else here) hold between two steps.
      const store = join(bench().root, "collected-store");
      const garbageFile = join(bench().root, "garbage.txt");
      writeFileSync(garbageFile, `garbage of ${bench().root}\n`);
      const garbage = execFileSync(join(nix.bin, "nix-store"), ["--store", `local?root=${store}`, "--add", garbageFile], {
        encoding: "utf8",
      }).trim();
      assert.ok(existsSync(join(store, garbage)));
      const done = await cleanUpVms(testContext(bench(), "housekeeping", { env: { NIX_BIN: collectingIn(nix, store) } }), {
        names: ["hk-keep-root"],
        keepRoot: true,
        collect: true,
      });
      assert.equal(existsSync(kept.config_dir), false);
      assert.ok(existsSync(root.generation_dir), "the prepared root is kept");
      assert.match(done.collected ?? "", /^1 store paths deleted, .* freed$/m);
      assert.equal(existsSync(join(store, garbage)), false, "the garbage was collected");
    });

    test("gc skips a VM in use, even one that became busy after the listing, and one renewed since; it goes on with the rest", async () => {
      // A worker of its own: gc takes every stale VM of it.
      const wb = createWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
      try {
        const steps = vmSteps(wb);
        const nixDir = join(wb.workersDir, "0", "nix");
        // One built, so that the listing asks Nix for sizes: the moment another step takes a VM below.
        await steps.renderLockBuild({ vm_name: "busy-built", profiles: [], test_suites: [] });
        for (const vm_name of ["busy-a", "busy-b", "busy-c", "busy-d"])
          await steps.render({ vm_name, profiles: [], test_suites: [] });
        const old = new Date(Date.now() - 3 * 24 * 3600 * 1000);
        for (const vm of ["busy-built", "busy-a", "busy-b", "busy-c", "busy-d"])
          utimesSync(join(nixDir, vm, "default.nix"), old, old);
        lutimesSync(join(nixDir, "busy-built", "result"), old, old);
        const hold = (vm: string) => holdLock(join(nixDir, vm), "build_closure");
        const holders = [await hold("busy-a")];
        const base = testContext(wb, "gc");
        let listed = false;
        const context = {
          ...base,
          async nix() {
            if (!listed) {
              listed = true;
              // Between gc's listing and its lock: a step takes busy-b, and busy-c is rendered again.
              holders.push(await hold("busy-b"));
              const now = new Date();
              utimesSync(join(nixDir, "busy-c", "default.nix"), now, now);
            }
            return base.nix();
          },
        };
        try {
          const result = await cleanUpVms(context, { olderThanDays: 1 });
          assert.deepEqual(result.removed.map((r) => r.vm_name).sort(), ["busy-built", "busy-d"]);
          assert.deepEqual(result.in_use.sort(), ["busy-a", "busy-b"]);
        } finally {
          await Promise.all(holders.map((held) => held.release()));
        }
        assert.deepEqual(
          readdirSync(nixDir)
            .filter((n) => !n.includes("."))
            .sort(),
          ["busy-a", "busy-b", "busy-c"],
        );
      } finally {
        wb.cleanup();
      }
    });

    test("diff of two VMs and of a VM against its previous build matches nix store diff-closures", async () => {
      const steps = vmSteps(bench());
      const a = await steps.renderLockBuild({ vm_name: "hk-diff", profiles: [], test_suites: [] });
      const b = await steps.renderLockBuild({ vm_name: "hk-diff", profiles: ["build-tools"], test_suites: [] });
      const raw = nixSync(nix, ["store", "diff-closures", a.toplevel, b.toplevel]);
      const previous = await diffSystems(context(), "hk-diff");
      assert.equal(previous.from, a.toplevel);
      assert.equal(previous.to, b.toplevel);
      assert.deepEqual(await diffSystems(context(), "hk-diff@previous"), previous, "VM@previous alone: the same two builds");
      assertNixDiff(previous.diff.changes, raw);
      assert.ok(previous.diff.added.includes(b.toplevel) && previous.diff.removed.includes(a.toplevel));
      const other = await steps.renderLockBuild({ vm_name: "hk-diff-other", profiles: ["devel"], test_suites: [] });
      const two = await diffSystems(context(), "hk-diff", "hk-diff-other");
      assertNixDiff(two.diff.changes, nixSync(nix, ["store", "diff-closures", b.toplevel, other.toplevel]));
      const byPath = await diffSystems(context(), "hk-diff@previous", other.toplevel);
      assert.equal(byPath.from, a.toplevel);
      for (const odd of [
        "hk-diff@yesterday",
        "hk-diff@previous@x",
        "hk-diff@",
        "@previous",
        "/nix/store/../../etc",
        `${a.toplevel}.drv`,
      ])
        await assert.rejects(
          diffSystems(context(), odd, "hk-diff"),
          (e: Error) => e instanceof InputError && /must be VM, VM@previous, or a system's store path/.test(e.message),
          odd,
        );
      await assert.rejects(diffSystems(context(), "hk-diff@previous@x"), InputError);
      await assert.rejects(diffSystems(context(), a.toplevel), /a store path, which has no previous build/);
    });

    test("a worker with odd directories and a process rooting an unbuilt derivation: listed, collected, never a failure", async () => {
      const steps = vmSteps(bench());
      const vm = await steps.renderLockBuild({ vm_name: "hk-odd", profiles: [], test_suites: [] });
      // Copies of a VM under names no VM can have: not VMs, never offered, never in the way.
      const nixDir = join(bench().workersDir, "0", "nix");
      for (const odd of ["a b", "*", "$(touch${IFS}PWNED)"])
        cpSync(vm.config_dir, join(nixDir, odd), { recursive: true, verbatimSymlinks: true });
      // A GC root to a derivation never built (Nix 2.8's path-info reads a .drv as its missing outputs).
      const drvRoot = join(bench().root, "unbuilt.drv");
      execFileSync(join(nix.bin, "nix-instantiate"), [
        "--add-root",
        drvRoot,
        "--indirect",
        "-E",
        `derivation { name = "hk-unbuilt-${Date.now()}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }`,
      ]);
      // An indirect root whose link is gone: Nix says it removes it as it lists the roots, which says nothing of VMs.
      const staleLink = join(bench().root, "stale-root");
      execFileSync(join(nix.bin, "nix-store"), ["--add-root", staleLink, "--indirect", "--realise", vm.toplevel]);
      rmSync(staleLink);
      const log = captureLog(null, "normal");
      const names = (await listVms(testContext(bench(), "list", { log }))).map((v) => v.vm_name);
      assert.ok(names.includes("hk-odd") && !names.some((n) => /[ *$]/.test(n)), names.join(", "));
      assert.doesNotMatch(log.text(), /removing stale/);
      const locksBefore = readdirSync(nixDir).filter((n) => n.endsWith(".lock")).length;
      const dry = await cleanUpVms(context(), { olderThanDays: 0, dryRun: true });
      assert.ok(dry.removed.some((r) => r.vm_name === "hk-odd"));
      assert.equal(readdirSync(nixDir).filter((n) => n.endsWith(".lock")).length, locksBefore, "a dry run makes no lock file");
      const twice = await cleanUpVms(context(), { names: ["hk-odd", "hk-odd"], dryRun: true });
      assert.equal(twice.removed.length, 1, "a name given twice is removed once");
      // A render that failed before writing its config dir leaves only its lock file: remove takes that too.
      const failed = join(nixDir, "hk-failed-render");
      await withDirLock(failed, lockHolder("render_config", 0), async () => {});
      assert.ok(existsSync(`${failed}.lock`) && !(await listVms(context())).some((v) => v.vm_name === "hk-failed-render"));
      // A file of someone else's where a cache of ours would be: it stays.
      writeFileSync(`${failed}.closure.json`, '{"not":"ours"}\n');
      const leftover = await cleanUpVms(context(), { names: ["hk-failed-render"] });
      assert.deepEqual(leftover.removed[0]?.removed, [`${failed}.lock`]);
      assert.equal(existsSync(`${failed}.lock`), false);
      assert.equal(readFileSync(`${failed}.closure.json`, "utf8"), '{"not":"ours"}\n');
    });
  });
}

describe("housekeeping of VMs never built", () => {
  test("every field of list and remove is checked, named with its value, before anything is removed", async () => {
    const wb = createWorkbench(null);
    try {
      const steps = vmSteps(wb);
      const vms = ["hk-field-a", "hk-field-b", "hk-field-c"];
      const nixDir = join(wb.workersDir, "0", "nix");
      for (const [i, vm_name] of vms.entries()) {
        await steps.render({ vm_name, profiles: [], test_suites: [] });
        const rendered = new Date(Date.now() - (2 + i) * 24 * 3600 * 1000);
        utimesSync(join(nixDir, vm_name, "default.nix"), rendered, rendered);
      }
      const before = snapshot(nixDir);
      // vm_names, older_than_days, keep, keep_root, collect, dry_run: as a form or a script may send them.
      const bad: [unknown[], RegExp][] = [
        [[[], 1, "two"], /^keep: "two" must be a whole number >= 0/],
        [[[], 1, null], /^keep: null must be a whole number >= 0/],
        [[[], 1, { n: 5 }], /^keep: \{"n":5\} must be a whole number >= 0/],
        [[[], 1, -1], /^keep: -1 must be a whole number >= 0/],
        [[[], 1, 1.5], /^keep: 1\.5 must be a whole number >= 0/],
        [[[], 1, ""], /^keep: "" must be a whole number >= 0/],
        [[[], -1], /^older_than_days: -1 must be a number of days >= 0/],
        [[[], ""], /^older_than_days: "" must be a number of days >= 0/],
        [[[], "30d"], /^older_than_days: "30d" must be a number of days >= 0/],
        [["hk-field-a"], /^vm_names: "hk-field-a" must be a list of VM names/],
        [[[""]], /^vm_names\[0\]: "" is not a VM name/],
        [[["hk-field-a", null]], /^vm_names\[1\]: null is not a VM name/],
        [[["hk-field-a", "../x"]], /^vm_names\[1\]: "\.\.\/x" is not a VM name/],
        [[["hk-field-a", "hk-nonexistent"]], /^vm_names\[1\]: "hk-nonexistent" is not a VM of this worker/],
        [[["hk-field-a"], 0, 0, "true"], /^keep_root: "true" must be true or false/],
        [[[], 1, 0, false, "false"], /^collect: "false" must be true or false/],
        [[["hk-field-a"], 0, 0, false, false, "no"], /^dry_run: "no" must be true or false/],
        // Null, where its absence would mean removing for real, is refused rather than taken as false.
        [[["hk-field-a"], 0, 0, false, false, null], /^dry_run: null must be true or false: null would mean removing/],
        [[["hk-field-a"], 0, 0, null], /^keep_root: null must be true or false: null would mean removing/],
      ];
      for (const [args, message] of bad) {
        await assert.rejects(
          asWorker(wb, () => (removeStep as (...a: unknown[]) => Promise<unknown>)(...args)),
          (e: Error) => e instanceof InputError && message.test(e.message),
          JSON.stringify(args),
        );
        assert.deepEqual(snapshot(nixDir), before, `nothing removed after ${JSON.stringify(args)}`);
      }
      await assert.rejects(
        asWorker(wb, () => (listStep as (a: unknown) => Promise<unknown>)("true")),
        /^InputError: all_workers: "true" must be true or false/,
      );
      // A count as digits is a count; keep 2 of 3 removes one.
      const kept = await asWorker(wb, () =>
        (removeStep as (...a: unknown[]) => Promise<Collection>)([], 1, "2", false, false, true),
      );
      assert.equal(kept.removed.length, 1, JSON.stringify(kept));
      // 0 days is every VM, as gc --older-than 0d; left empty (the form's default), none goes by age.
      const every = await asWorker(wb, () =>
        (removeStep as (...a: unknown[]) => Promise<Collection>)([], 0, 0, false, false, true),
      );
      assert.equal(every.removed.length, vms.length, JSON.stringify(every));
      const byDefault = await asWorker(wb, () => (removeStep as (...a: unknown[]) => Promise<Collection>)());
      assert.deepEqual(byDefault.removed, []);
    } finally {
      wb.cleanup();
    }
  });

  test("list asks no Nix and shows no size; gc with 0 days takes every VM", async () => {
    // No nix on this worker at all: listing rendered VMs must not need one.
    const wb = createWorkbench(null);
    try {
      const steps = vmSteps(wb);
      await steps.render({ vm_name: "hk-never-a", profiles: [], test_suites: [] });
      await steps.render({ vm_name: "hk-never-b", profiles: [], test_suites: [] });
      const vms = await listVms(testContext(wb, "list"));
      assert.deepEqual(
        vms.map((vm) => [vm.vm_name, vm.state, vm.closure_size]),
        [
          ["hk-never-a", "rendered", 0],
          ["hk-never-b", "rendered", 0],
        ],
      );
      assert.match(formatVms(vms), /^hk-never-a +0 +rendered +- +- +- +-$/m);
      const all = await cleanUpVms(testContext(wb, "gc"), { olderThanDays: 0, dryRun: true });
      assert.deepEqual(all.removed.map((r) => r.vm_name).sort(), ["hk-never-a", "hk-never-b"]);
      const none = await cleanUpVms(testContext(wb, "gc"), { dryRun: true });
      assert.deepEqual(none.removed, [], "no age given: none by age");
    } finally {
      wb.cleanup();
    }
  });
});
