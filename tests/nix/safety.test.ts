// What the tool promises on a shared worker (the README's "Safety"), each
// promise tried the way a hostile or unlucky user would, with the real nix:
// directories that are not ours, roots of other VMs, races, killed runs,
// odd paths, broken files.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import type { RenderInput } from "../../f/nix/lib/config/model.ts";
import { InputError, SetupError } from "../../f/nix/lib/core/errors.ts";
import { readIfExists } from "../../f/nix/lib/core/files.ts";
import { nixSettings } from "../../f/nix/lib/nix/settings.ts";
import { checkPublishTargets } from "../../f/nix/lib/steps/checks.ts";
import { lockHolderOf } from "../../f/nix/lib/worker/dir_lock.ts";
import { main as prepareRootStep } from "../../f/nix/prepare_root.ts";
import { nixSync, processesOf, TEST_NIX_CONFIG, type TestNix, testNixes } from "../helpers/nix.ts";
import { asWorker, captureLog, vmSteps, waitFor, within } from "../helpers/steps.ts";
import { snapshot, useWorkbench } from "../helpers/workbench.ts";

function closureOf(nix: TestNix, path: string): string[] {
  return nixSync(nix, ["path-info", "--recursive", path]).trim().split("\n").sort();
}

/** A second local user, for the hostile one: nobody. */
const NOBODY = 65534;

function asNobody(...command: string[]): void {
  execFileSync("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--", ...command]);
}

/** Every entry under `dir` (itself included): its owner, mode and what it holds or names, so that any change shows. */
function entries(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (path: string) => {
    const stat = lstatSync(path);
    const what = stat.isSymbolicLink() ? `-> ${readlinkSync(path)}` : stat.isFile() ? readFileSync(path, "utf8") : "";
    found.set(path, `${stat.uid} ${(stat.mode & 0o7777).toString(8)} ${what}`);
    if (stat.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(dir);
  return found;
}

/** Asks Nix itself, by the store URI prepare_root hands it, that the generation's store holds the system's closure, valid. */
function assertValidRoot(nix: TestNix, generationDir: string, toplevel: string): void {
  const store = `local?root=${generationDir}`;
  const nixStore = (...args: string[]) =>
    execFileSync(join(nix.bin, "nix-store"), ["--store", store, ...args], {
      encoding: "utf8",
      env: { ...process.env, NIX_CONFIG: TEST_NIX_CONFIG },
      stdio: ["ignore", "pipe", "pipe"],
    });
  nixStore("--verify-path", toplevel);
  assert.deepEqual(nixStore("--query", "--requisites", toplevel).trim().split("\n").sort(), closureOf(nix, toplevel));
}

for (const nix of testNixes()) {
  describe(`safety with ${nix.version}`, () => {
    const bench = useWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
    const steps = () => vmSteps(bench());
    const built = (vm: string, input: RenderInput = {}) =>
      steps().renderLockBuild({ vm_name: vm, profiles: [], test_suites: [], ...input });

    test("a generations directory that is not ours is refused, and nothing in it is touched", async () => {
      const b = await built("not-ours-vm");
      const data = join(bench().root, "data");
      const theirs = join(data, "srv.generations");
      for (const dir of ["1", "2", "7.partial"]) mkdirSync(join(theirs, dir), { recursive: true });
      writeFileSync(join(theirs, "1", "thesis.tex"), "years of work\n");
      writeFileSync(join(theirs, "7.partial", "draft"), "more\n");
      const before = snapshot(data);
      await assert.rejects(
        steps().prepareRoot(b.config_dir, "", join(data, "srv")),
        (e: Error) =>
          e instanceof InputError &&
          e.exitStatus === 2 &&
          /^root_dir: ".*srv" cannot use .*srv\.generations, its generations: it exists but was not made by nixos-closure .*nothing in it was touched/.test(
            e.message,
          ),
      );
      assert.deepEqual(snapshot(data), before);
      assert.deepEqual(readdirSync(theirs).sort(), ["1", "2", "7.partial"]);
      assert.equal(existsSync(join(data, "srv")), false);
    });

    test("a place others may write, and generations, a marker, a link or a lock another user made, are refused by name: nothing of theirs is written, followed or removed", async () => {
      const b = await built("foreign-place-vm");
      const place = (name: string, mode: number, uid = 0) => {
        const dir = join(bench().root, name);
        mkdirSync(dir);
        chownSync(dir, uid, uid);
        chmodSync(dir, mode);
        return dir;
      };
      // Sticky, but another user's: its owner may move anything in it (and the root would follow what they put there).
      const theirs = place("theirs-sticky", 0o1777, NOBODY);
      // Anyone may write it, and move what is in it.
      const open = place("open", 0o777);
      // As /tmp: root's and sticky, a place for a root; but what another user made there first under a root's names is theirs.
      const shared = place("shared", 0o1777);
      const marker = (dir: string, name: string) => JSON.stringify({ root_dir: join(dir, name), config_dir: b.config_dir });
      /** Generations of `name` in `dir`, made by nobody as the reproduction did: a marker naming this root and VM, and a generation. */
      const planted = (dir: string, name: string, mode: string) => {
        const generations = join(dir, `${name}.generations`);
        asNobody("mkdir", generations, join(generations, "7"));
        asNobody("sh", "-c", 'printf "%s" "$1" > "$2"', "sh", marker(dir, name), join(generations, ".nixos-closure-root"));
        asNobody("chmod", mode, generations);
      };
      planted(theirs, "r1", "777");
      planted(shared, "r1", "755");
      // Ours, with our marker, but others may write it: they could have put anything in it.
      mkdirSync(join(shared, "r2.generations", "7"), { recursive: true });
      writeFileSync(join(shared, "r2.generations", ".nixos-closure-root"), marker(shared, "r2"));
      chmodSync(join(shared, "r2.generations"), 0o777);
      // Ours, but another user's marker in it.
      mkdirSync(join(shared, "r3.generations", "7"), { recursive: true });
      writeFileSync(join(shared, "r3.generations", ".nixos-closure-root"), marker(shared, "r3"));
      chownSync(join(shared, "r3.generations", ".nixos-closure-root"), NOBODY, NOBODY);
      const mine = await steps().prepareRoot(b.config_dir, "", join(shared, "mine"));
      // Another user's link into our generations, and another user's lock file.
      asNobody("ln", "-s", mine.generation, join(shared, "r4"));
      asNobody("touch", join(shared, "r5.lock"));
      const cases: [string, RegExp][] = [
        [join(theirs, "r1"), /is in no safe place: .*theirs-sticky belongs to uid 65534, neither root nor uid 0/],
        [join(open, "r1"), /is in no safe place: others may write .*open \(mode 0777, without the sticky bit\)/],
        [join(shared, "r1"), /cannot use .*shared\/r1\.generations, its generations: it belongs to uid 65534, not to uid 0/],
        [join(shared, "r2"), /cannot use .*r2\.generations, its generations: it may be written by others \(mode 0777\)/],
        [join(shared, "r3"), /its marker .*r3\.generations\/\.nixos-closure-root belongs to uid 65534/],
        [join(shared, "r4"), /is a link that is not ours: it belongs to uid 65534/],
        [join(shared, "r5"), /has a lock .*shared\/r5\.lock that is not ours/],
      ];
      for (const [rootDir, message] of cases) {
        const before = entries(dirname(rootDir));
        await assert.rejects(steps().prepareRoot(b.config_dir, "", rootDir), (e: Error) => {
          assert.ok(e instanceof InputError && e.exitStatus === 2, `${rootDir}: ${e.stack}`);
          assert.ok(e.message.startsWith(`root_dir: "${rootDir}" `), e.message);
          assert.match(e.message, message);
          assert.match(e.message, /nothing (was changed|in it was touched)/);
          return true;
        });
        assert.deepEqual(entries(dirname(rootDir)), before, `${rootDir}: nothing was written, moved or removed`);
      }
      // A root made in the shared place: its generations 0755 and ours, whatever the umask, and so its next runs
      // are no place for anyone else's swap (nobody tries, all along, the reproduction's loop).
      const victim = place("victim", 0o755);
      const stop = join(bench().root, "stop-swapping");
      const swapper = spawn("setpriv", [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        "--clear-groups",
        "--",
        "sh",
        "-c",
        `while [ ! -e ${stop} ]; do for p in ${shared}/made/*.generations/*.partial; do mv "$p" ${shared}/x && ln -s ${victim} "$p"; done 2>/dev/null; done`,
      ]);
      const umask = process.umask(0o077);
      try {
        for (let run = 0; run < 3; run++) {
          const made = await steps().prepareRoot(b.config_dir, "", join(shared, "made", "root"));
          assertValidRoot(nix, made.generation_dir, b.toplevel);
        }
      } finally {
        process.umask(umask);
        writeFileSync(stop, "");
        await new Promise((resolve) => swapper.on("exit", resolve));
      }
      for (const dir of [join(shared, "made"), join(shared, "made", "root.generations")]) {
        assert.equal((lstatSync(dir).mode & 0o7777).toString(8), "755", dir);
        assert.equal(lstatSync(dir).uid, 0, dir);
      }
      assert.deepEqual(readdirSync(victim), [], "nothing was made where a swapped link led");
      assert.equal(existsSync(join(shared, "x")), false);
      assertValidRoot(nix, mine.generation_dir, b.toplevel);
    });

    test("two roots of one VM keep their own generations: preparing one never prunes the other", async () => {
      const b = await built("two-roots-vm");
      const first = await steps().prepareRoot(b.config_dir);
      const second = await steps().prepareRoot(b.config_dir, "", join(b.config_dir, "root2"));
      const third = await steps().prepareRoot(b.config_dir, "", join(b.config_dir, "root2"));
      const fourth = await steps().prepareRoot(b.config_dir, "", join(b.config_dir, "root2"));
      assert.notEqual(second.generation, first.generation);
      assert.ok(!fourth.generation.startsWith(`${first.generation}/`));
      assert.equal(readlinkSync(first.root_dir), first.generation, "root still points to its generation");
      assert.deepEqual(
        nixSync(nix, ["path-info", "--store", `local?root=${first.generation_dir}`, "--all"])
          .trim()
          .split("\n")
          .sort(),
        closureOf(nix, b.toplevel),
        "and that generation is whole",
      );
      assert.equal(existsSync(second.generation), false, "root2's own oldest generation was pruned");
      assert.ok(existsSync(third.generation) && existsSync(fourth.generation));
    });

    test("two VMs asking for one root at once: one gets it, the other is refused by name, cleanly", async () => {
      const a = await built("root-owner-a");
      const b = await built("root-owner-b", { user_name: "other" });
      const shared = join(bench().root, "shared-root");
      const results = await Promise.allSettled([
        steps().prepareRoot(a.config_dir, "", shared),
        steps().prepareRoot(b.config_dir, "", shared),
      ]);
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
      assert.equal(lost.length, 1);
      assert.ok(lost[0]?.reason instanceof InputError, String(lost[0]?.reason));
      assert.match(lost[0]?.reason.message, /is the root of another VM \(config dir .*root-owner-[ab]\); nothing was changed/);
      const winner = (won[0] as PromiseFulfilledResult<{ toplevel: string; generation_dir: string }>).value;
      assert.deepEqual(
        nixSync(nix, ["path-info", "--store", `local?root=${winner.generation_dir}`, "--all"])
          .trim()
          .split("\n")
          .sort(),
        closureOf(nix, winner.toplevel),
        "the root holds the winner's closure only",
      );
    });

    test("prepare_root started during a build waits for it, then prepares the new closure", async () => {
      const src = join(bench().root, "src", "xfsprogs-race");
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, "salt"), `${process.pid}-${Date.now()}`);
      const input = (preBuild: string): RenderInput => ({
        vm_name: "race-vm",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src, attrs: { preBuild } }],
      });
      const old = await steps().renderLockBuild(input("echo first"));
      await steps().render(input("sleep 3"));
      await steps().lock(old.config_dir);
      const building = steps().build(old.config_dir);
      await waitFor(20_000, "the build to take the lock", () =>
        (readIfExists(`${old.config_dir}.lock`) ?? "").includes('"step":"build_closure"'),
      );
      const preparing = steps().prepareRoot(old.config_dir);
      const [fresh, root] = await within(120_000, "the build and the prepare", Promise.all([building, preparing]));
      assert.notEqual(fresh.toplevel, old.toplevel);
      assert.equal(root.toplevel, fresh.toplevel, "the root holds the closure of the build it waited for");
    });

    test("a root may not sit where other VMs' files live, nor inside a prepared root's generations", async () => {
      const a = await built("placed-a");
      const b = await built("placed-b");
      const ra = await steps().prepareRoot(a.config_dir, "", join(bench().root, "placed-root"));
      const before = snapshot(join(bench().root, "placed-root.generations"));
      const refusals: [string, RegExp][] = [
        [join(ra.generation_dir, "home", "r5"), /is inside .*placed-root\.generations, the generations of a prepared root/],
        [join(bench().root, "placed-root.generations", "7"), /is inside .*placed-root\.generations/],
        [join(a.config_dir, "..", "vm3"), /where the VMs' config dirs live/],
        [`${a.config_dir}.pending`, /where the VMs' config dirs live/],
        [join(bench().workersDir, "1", "nix", "vm5"), /where the VMs' config dirs live/],
        [join(bench().root, "link-to-vms", "vm3"), /where the VMs' config dirs live/],
        [join(bench().root, "q&state=x"), /may hold only letters, digits/],
        ["/nix/var/nix/gcroots/r6", /must not be inside \/nix\/var, Nix's state/],
        [join(bench().root, "link-to-gcroots", "r7"), /must not be inside \/nix\/var, Nix's state/],
        [join(bench().root, "link-to-store", "r8"), /must not be inside \/nix\/store/],
      ];
      symlinkSync(join(bench().workersDir, "0", "nix"), join(bench().root, "link-to-vms"));
      symlinkSync("/nix/var/nix/gcroots", join(bench().root, "link-to-gcroots"));
      symlinkSync("/nix/store", join(bench().root, "link-to-store"));
      for (const [rootDir, message] of refusals) {
        await assert.rejects(
          steps().prepareRoot(b.config_dir, "", rootDir),
          (e: Error) => e instanceof InputError && message.test(e.message),
        );
      }
      assert.deepEqual(snapshot(join(bench().root, "placed-root.generations")), before, "the other root is untouched");
      assert.equal(existsSync("/nix/var/nix/gcroots/r6.generations"), false);
      await steps().prepareRoot(a.config_dir, "", join(bench().root, "placed-root"));
      assert.ok(existsSync(ra.generation_dir), "and its previous generation is kept");
    });

    test("pruning a generation never follows what another user planted in its tmp/; one it cannot remove is a warning", async (t) => {
      const b = await built("prune-vm");
      const first = await steps().prepareRoot(b.config_dir);
      await steps().prepareRoot(b.config_dir);
      // A second local user (nobody) plants links to root-only files in the first generation's tmp/, in a tree of its own.
      const secret = join(bench().root, "prune-secret");
      mkdirSync(secret, { mode: 0o700 });
      writeFileSync(join(secret, "key"), "PRIVATE-KEY-MATERIAL\n", { mode: 0o600 });
      const tmp = join(first.generation, "tmp");
      const nobody = (...command: string[]) =>
        execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", ...command]);
      nobody("mkdir", "-p", join(tmp, "theirs", "sub"));
      nobody("ln", "-s", join(secret, "key"), join(tmp, "theirs", "sub", "key"));
      nobody("ln", "-s", secret, join(tmp, "theirs", "dir"));
      nobody("ln", "-s", join(secret, "key"), join(tmp, "key"));
      // And a file nothing may remove (immutable), so that pruning fails once the root has switched.
      const stuck = join(tmp, "stuck");
      writeFileSync(stuck, "");
      try {
        execFileSync("chattr", ["+i", stuck], { stdio: "pipe" });
      } catch (error) {
        t.skip(`chattr +i does not work here: ${(error as Error).message.split("\n")[0]}`);
        return;
      }
      try {
        const log = captureLog();
        const third = await vmSteps(bench(), { log }).prepareRoot(b.config_dir);
        assert.equal(readlinkSync(third.root_dir), third.generation, "the root switched");
        assert.match(
          log.text(),
          new RegExp(`${first.generation} could not be removed \\(the next run tries again\\): .*\\(EPERM\\)`),
        );
        assert.ok(existsSync(stuck));
      } finally {
        execFileSync("chattr", ["-i", stuck]);
      }
      assert.equal((statSync(secret).mode & 0o7777).toString(8), "700");
      assert.equal((statSync(join(secret, "key")).mode & 0o7777).toString(8), "600");
      assert.equal(readFileSync(join(secret, "key"), "utf8"), "PRIVATE-KEY-MATERIAL\n");
      await steps().prepareRoot(b.config_dir);
      assert.equal(existsSync(first.generation), false, "the next run removed it");
      assert.equal(readFileSync(join(secret, "key"), "utf8"), "PRIVATE-KEY-MATERIAL\n");
    });

    test("a root reached through a link is the root it lands on: inside the config dir, its generations and lock stay beside it", async () => {
      const b = await built("linked-root-vm");
      const link = join(bench().root, "linked-root-vm-link");
      symlinkSync(b.config_dir, link);
      const through = await steps().prepareRoot(b.config_dir, "", join(link, "root"));
      assert.equal(through.root_dir, join(b.config_dir, "root"), "named by its real place");
      assert.equal(dirname(through.generation), `${b.config_dir}.roots/root`);
      // Nothing of the root but its link inside the config dir, which Nix copies into the store at every build.
      assert.deepEqual(
        readdirSync(b.config_dir).filter((n) => n.startsWith("root")),
        ["root"],
      );
      assert.deepEqual(readdirSync(`${b.config_dir}.roots`), ["root"], "the config dir's own lock guards it");
      const again = await steps().prepareRoot(b.config_dir);
      assert.equal(again.root_dir, through.root_dir, "the default root is the same root, not refused");
      assert.ok(existsSync(through.generation), "whose previous generation is kept");
      const other = await steps().prepareRoot(b.config_dir, "", join(link, "root2"));
      assert.equal(other.root_dir, join(b.config_dir, "root2"));
      assert.equal(dirname(other.generation), `${b.config_dir}.roots/root2`);
      assert.deepEqual(readdirSync(`${b.config_dir}.roots`).sort(), ["root", "root2"]);
    });

    test("a root inside the config dir is an entry of it, its database where Nix finds it; one deeper is refused and nothing is made", async () => {
      const b = await built("nested-root-vm");
      const before = entries(dirname(b.config_dir));
      const deeper = join(b.config_dir, "sub", "deeper", "r");
      await assert.rejects(steps().prepareRoot(b.config_dir, "", deeper), (e: Error) => {
        assert.ok(e instanceof InputError && e.exitStatus === 2, String(e));
        assert.match(
          e.message,
          /^root_dir: ".*\/sub\/deeper\/r" must be directly in the config dir \(.*nested-root-vm\/<name>\) or outside it/,
        );
        return true;
      });
      assert.deepEqual(entries(dirname(b.config_dir)), before, "no directory in the config dir, no generations beside it");
      // Every character a root's path may hold, in its name: Nix reads the generations' URI as it is spelt.
      const name = "r+2@x,y=z~_.-";
      const r = await steps().prepareRoot(b.config_dir, "", join(b.config_dir, name));
      assert.equal(r.generation, join(`${b.config_dir}.roots`, name, "1"));
      assertValidRoot(nix, r.generation_dir, b.toplevel);
      assert.deepEqual(readdirSync(`${b.config_dir}.roots`), [name], "nothing beside its generations");
      assert.deepEqual(
        readdirSync(b.config_dir, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name),
        [],
        "the config dir holds no directory, which every build would copy",
      );
    });

    test("a root lock an earlier version left inside the config dir goes; a root switched through a link still is this root", async () => {
      const b = await built("migrated-root-vm");
      const first = await steps().prepareRoot(b.config_dir);
      // An earlier version kept the default root's lock inside the config dir: empty, or naming its last holder.
      writeFileSync(join(b.config_dir, "root.lock"), "");
      const second = await steps().prepareRoot(b.config_dir);
      assert.equal(existsSync(join(b.config_dir, "root.lock")), false);
      assert.ok(existsSync(first.generation) && existsSync(second.generation));
      // A file of someone else's by that name is not ours to remove.
      writeFileSync(join(b.config_dir, "root.lock"), "my notes\n");
      await steps().prepareRoot(b.config_dir);
      assert.equal(readFileSync(join(b.config_dir, "root.lock"), "utf8"), "my notes\n");
      rmSync(join(b.config_dir, "root.lock"));
      // A root prepared, by an earlier version, through a linked parent: its marker and link name the linked place.
      const real = join(bench().root, "migrated-real");
      mkdirSync(real);
      const linked = join(bench().root, "migrated-link");
      symlinkSync(real, linked);
      const outside = await steps().prepareRoot(b.config_dir, "", join(real, "root"));
      const marker = join(real, "root.generations", ".nixos-closure-root");
      writeFileSync(marker, readFileSync(marker, "utf8").replace(`${real}/root`, `${linked}/root`));
      rmSync(join(real, "root"));
      symlinkSync(join(linked, "root.generations", basename(outside.generation)), join(real, "root"));
      const kept = () =>
        readdirSync(join(real, "root.generations"))
          .filter((n) => /^\d+$/.test(n))
          .sort();
      for (const [spelling, generations] of [
        [join(real, "root"), ["1", "2"]],
        [join(linked, "root"), ["2", "3"]],
      ] as const) {
        const next = await steps().prepareRoot(b.config_dir, "", spelling);
        assert.equal(next.root_dir, join(real, "root"));
        assert.deepEqual(kept(), generations, "the generation switched to through the link is the current one, then kept");
      }
    });

    test("a full disk while a root is first prepared: a message with the path, and the next run recovers", async (t) => {
      const b = await built("full-disk-vm");
      const disk = join(bench().root, "full-disk");
      mkdirSync(disk);
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=32k", "tmpfs", disk], { stdio: "pipe" });
      } catch (error) {
        t.skip(`cannot mount a small tmpfs here: ${(error as Error).message.split("\n")[0]}`);
        return;
      }
      try {
        try {
          execFileSync("dd", ["if=/dev/zero", `of=${join(disk, "filler")}`, "bs=4k", "count=64"], { stdio: "pipe" });
        } catch {} // dd stops when the disk is full
        await assert.rejects(
          asWorker(bench(), () => prepareRootStep(b.config_dir, "", join(disk, "root"))),
          (e: Error) => e instanceof SetupError && /cannot .*full-disk.*: no space left on the device \(ENOSPC\)/.test(e.message),
        );
        assert.deepEqual(readdirSync(disk).sort(), ["filler", "root.lock"].filter((n) => existsSync(join(disk, n))).sort());
        rmSync(join(disk, "filler"));
        execFileSync("mount", ["-o", "remount,size=64m", disk]);
        const r = await steps().prepareRoot(b.config_dir, "", join(disk, "root"));
        assert.equal(readlinkSync(r.root_dir), r.generation);
      } finally {
        execFileSync("umount", [disk]);
      }
    });

    test("a config dir that is not one of this worker's VMs is refused, even through a link", async () => {
      const b = await built("real-config-vm");
      const elsewhere = join(bench().root, "elsewhere");
      mkdirSync(elsewhere);
      writeFileSync(join(elsewhere, "flake.nix"), "{ outputs = _: { }; }\n");
      for (const dir of [elsewhere]) {
        await assert.rejects(steps().prepareRoot(dir), /is not a VM config dir of this worker/);
        await assert.rejects(steps().build(dir), /is not a VM config dir of this worker/);
      }
      const link = join(bench().root, "config-link");
      symlinkSync(b.config_dir, link);
      const through = await steps().build(link);
      assert.equal(through.config_dir, b.config_dir, "a link is followed to the VM's own config dir (and its lock)");
    });

    test("publish_to may not write into the worker's VM dirs or a prepared root", async () => {
      const b = await built("publish-target-vm");
      const r = await steps().prepareRoot(b.config_dir);
      for (const uri of [`file://${b.config_dir}`, `local?root=${r.generation_dir}`, `file://${bench().workersDir}/1/nix/x`]) {
        assert.throws(
          () => checkPublishTargets(bench().env, nixSettings({ publish_to: [uri] }), "nix.publish_to"),
          (e: Error) => e instanceof InputError && /names a directory that (is in|is inside)/.test(e.message),
          uri,
        );
      }
      await assert.rejects(
        vmSteps(bench(), { nix: { publish_to: [`file://${b.config_dir}`] } }).build(b.config_dir),
        /where the VMs' config dirs live/,
      );
      const elsewhere = nixSettings({ publish_to: [`file://${join(bench().root, "cache")}`] });
      assert.doesNotThrow(() => checkPublishTargets(bench().env, elsewhere, "x"));
    });

    test("generation_dir is a real directory that Nix takes as a store root", async () => {
      const b = await built("real-dir-vm");
      const r = await steps().prepareRoot(b.config_dir);
      assert.equal(realpathSync(r.generation_dir), r.generation_dir, "no symlink on its path");
      assert.equal(realpathSync(r.root_dir), r.generation_dir, "the link resolves to it");
      const valid = nixSync(nix, ["path-info", "--store", `local?root=${r.generation_dir}`, "--all"]);
      assert.deepEqual(valid.trim().split("\n").sort(), closureOf(nix, b.toplevel));
    });

    test("odd root paths fail at once with a message, never a spin or a stack trace", async () => {
      const b = await built("odd-path-vm");
      const loop = join(bench().root, "loop");
      symlinkSync(loop, loop);
      const cases: [string, RegExp][] = [
        ["/proc/self/x", /cannot take the lock \/proc\/(self|\d+)\/x\.lock: .*\(ENOENT\)/],
        [join(loop, "root"), /is in no safe place: .*loop is a link that leads nowhere/],
        [join(bench().root, "x".repeat(300), "root"), /too long \(ENAMETOOLONG\)/],
      ];
      for (const [rootDir, message] of cases) {
        await within(
          10_000,
          `prepare_root with ${rootDir.slice(0, 60)}`,
          assert.rejects(steps().prepareRoot(b.config_dir, "", rootDir), (e: Error) => {
            assert.ok(e instanceof SetupError || e instanceof InputError, `${rootDir}: ${e.stack}`);
            assert.match(e.message, message);
            return true;
          }),
        );
      }
    });

    test("a corrupt flake.lock is named with its fix by build, and lock repairs it", async () => {
      const r = await steps().render({ vm_name: "corrupt-lock-vm", profiles: [], test_suites: [] });
      await steps().lock(r.config_dir);
      const lockFile = join(r.config_dir, "flake.lock");
      writeFileSync(lockFile, readFileSync(lockFile, "utf8").slice(0, 40));
      await assert.rejects(
        steps().build(r.config_dir),
        (e: Error) =>
          e instanceof SetupError && e.message.includes(lockFile) && /run lock_config, which locks it afresh/.test(e.message),
      );
      const log = captureLog();
      await vmSteps(bench(), { log }).lock(r.config_dir);
      assert.match(log.text(), /flake\.lock is not valid JSON .*locking the inputs afresh/);
      assert.ok(JSON.parse(readFileSync(lockFile, "utf8")).nodes["nixos-flake"]);
      assert.match((await steps().build(r.config_dir)).toplevel, /nixos-system-corrupt-lock-vm/);
    });

    test("a build step killed with SIGKILL takes its nix build with it: nothing swaps result later", async () => {
      const src = join(bench().root, "src", "xfsprogs-orphan");
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, "salt"), `${process.pid}-${Date.now()}`);
      const input = (attrs: Record<string, string>): RenderInput => ({
        vm_name: "orphan-vm",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src, attrs }],
      });
      const first = await steps().renderLockBuild(input({ preBuild: "echo first" }));
      await steps().render(input({ preBuild: "sleep 4" }));
      await steps().lock(first.config_dir);
      const code = `import { main } from ${JSON.stringify(join(ROOT, "f/nix/build_closure.ts"))}; await main(${JSON.stringify(first.config_dir)});`;
      const child = spawn(join(ROOT, "node_modules/.bin/bun"), ["-e", code], { env: bench().env });
      let seen = "";
      child.stderr.on("data", (chunk) => {
        seen += chunk;
      });
      const exited = new Promise((resolve) => child.on("exit", resolve));
      await waitFor(
        60_000,
        "the slow build to start",
        () => /building '.*xfsprogs-6\.13\.0\.drv'/.test(seen),
        () => child.kill("SIGKILL"),
      );
      child.kill("SIGKILL"); // no chance to stop its nix build itself
      await within(10_000, "the killed step to exit", exited);
      // Every process of the step (its nix build, anything started with the workbench's environment) is gone: none is
      // left to swap result later. (A nix build living on would be seen here, or would swap result before it ended.)
      await waitFor(5_000, "the kernel to end its nix build", () => processesOf(bench().root).length === 0);
      assert.equal(readlinkSync(join(first.config_dir, "result")), first.toplevel, "result is still the last finished build");
      assert.equal(await lockHolderOf(first.config_dir, bench().env), null, "and the config dir is free");
      const again = await steps().build(first.config_dir);
      assert.notEqual(again.toplevel, first.toplevel);
      assert.equal(readlinkSync(join(first.config_dir, "result")), again.toplevel);
    });
  });
}
