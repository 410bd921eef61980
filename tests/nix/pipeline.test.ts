// render -> lock -> build with the real nix, once per Nix version under test,
// against the fixture library and the stand-in nixpkgs, fully offline.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import type { RenderInput } from "../../f/nix/lib/config/model.ts";
import { NixError, SetupError } from "../../f/nix/lib/core/errors.ts";
import { readIfExists } from "../../f/nix/lib/core/files.ts";
import { lockHolderOf } from "../../f/nix/lib/worker/dir_lock.ts";
import { ED25519 } from "../helpers/golden_cases.ts";
import { processesOf, testNixes } from "../helpers/nix.ts";
import { captureLog, type StepOptions, vmSteps, waitFor, within } from "../helpers/steps.ts";
import { createWorkbench, useWorkbench } from "../helpers/workbench.ts";

interface Evaluated {
  hostName: string;
  users: Record<string, { home: string; keys: string[]; isNormalUser: boolean }>;
  fileSystems: Record<string, { device: string; fsType: string; options: string[] }>;
  packages: string[];
  virtualisation: { libvirtd: { enable: boolean } };
}

function evaluated(toplevel: string): Evaluated {
  return JSON.parse(readFileSync(join(toplevel, "etc", "evaluated.json"), "utf8")) as Evaluated;
}

/** The store path of a package in the system, found through sw/bin. */
function packageOf(toplevel: string, name: string): string {
  return realpathSync(join(toplevel, "sw", "bin", name)).replace(/\/bin\/[^/]+$/, "");
}

function lockedNarHash(configDir: string, node: string): string {
  const lock = JSON.parse(readFileSync(join(configDir, "flake.lock"), "utf8"));
  return lock.nodes[node].locked.narHash;
}

for (const nix of testNixes()) {
  describe(`pipeline with ${nix.version}`, () => {
    const bench = useWorkbench(nix);
    const renderConfig = (input: RenderInput) => vmSteps(bench()).render(input);
    const lockConfig = (dir: string, update = false, options: StepOptions = {}) => vmSteps(bench(), options).lock(dir, update);
    const buildClosure = (dir: string, options: StepOptions = {}) => vmSteps(bench(), options).build(dir);

    test("fresh render, lock and build; init and initrd from the bootspec", async () => {
      const rendered = await renderConfig({
        vm_name: "vm1",
        profiles: ["devel", "monitoring", "controller"],
        test_suites: ["fstests"],
        shares: { "/mnt/linux": { tag: "linux", options: ["ro"] } },
        ssh_keys: [`${ED25519} dev@laptop`],
        user_name: "john.doe",
        home: true,
        home_dir: "/home/john.doe",
      });
      const locked = await lockConfig(rendered.config_dir);
      assert.equal(locked.config_dir, rendered.config_dir);
      assert.deepEqual(locked.src_inputs, []);
      const nodes = (
        locked.lock as { nodes: Record<string, { locked?: { narHash?: string }; inputs?: Record<string, unknown> }> }
      ).nodes;
      assert.match(nodes["nixos-flake"]?.locked?.narHash ?? "", /^sha256-/);
      assert.deepEqual(nodes.root?.inputs?.nixpkgs, ["nixos-flake", "nixpkgs"], "nixpkgs follows the library");
      assert.deepEqual(Object.keys(nodes).sort(), ["nixos-flake", "nixpkgs", "root"], "no second nixpkgs");

      const built = await buildClosure(rendered.config_dir);
      assert.match(built.toplevel, /^\/nix\/store\/[a-z0-9]{32}-nixos-system-vm1-/);
      assert.equal(readlinkSync(join(rendered.config_dir, "result")), built.toplevel);
      assert.equal(built.init, `${built.toplevel}/init`);
      assert.match(built.initrd ?? "", /^\/nix\/store\/[a-z0-9]{32}-initrd-vm1\/initrd$/);
      assert.equal(built.boot_json, `${built.toplevel}/boot.json`);

      const system = evaluated(built.toplevel);
      assert.equal(system.hostName, "vm1");
      assert.equal(system.users.root?.home, "/home/john.doe");
      assert.deepEqual(system.users.root?.keys, [`${ED25519} dev@laptop`]);
      assert.deepEqual(system.users["john.doe"]?.keys, [`${ED25519} dev@laptop`]);
      assert.equal(system.users["john.doe"]?.isNormalUser, true);
      assert.deepEqual(system.fileSystems["/mnt/linux"], {
        device: "linux",
        fsType: "virtiofs",
        options: ["ro"],
        neededForBoot: false,
      });
      assert.equal(system.fileSystems["/var/lib/xfstests"]?.device, "fstests");
      assert.equal(system.fileSystems["/home/john.doe"]?.device, "home");
      assert.equal(system.fileSystems["/nix/store"]?.device, "store");
      assert.ok(
        system.packages.some((p) => p.startsWith("sysstat-")),
        "monitoring enabled",
      );
      assert.ok(
        system.packages.some((p) => p.startsWith("xfstests-")),
        "fstests suite",
      );
      assert.ok(
        system.packages.some((p) => p.startsWith("kdevops-tools-")),
        "the library's overlay",
      );
      assert.equal(system.virtualisation.libvirtd.enable, true, "controller enabled");
    });

    test("a source-override directory edited after a build lands in the next closure", async () => {
      const src = join(bench().root, "src", "fio");
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, "VERSION"), "first\n");
      const r = await renderConfig({
        vm_name: "vm-src",
        profiles: ["devel"],
        test_suites: ["fstests"],
        overrides: [{ pkg: "fio", src, attrs: { autoreconfPhase: "make configure" } }],
      });
      assert.deepEqual((await lockConfig(r.config_dir)).src_inputs, ["fio-src"]);
      const first = await buildClosure(r.config_dir);
      const fio1 = packageOf(first.toplevel, "fio");
      assert.equal(readFileSync(join(fio1, "share", "fio", "src", "VERSION"), "utf8"), "first\n");
      assert.match(readFileSync(join(fio1, "share", "fio", "build-env"), "utf8"), /^autoreconfPhase=make configure$/m);

      writeFileSync(join(src, "VERSION"), "second\n");
      await lockConfig(r.config_dir, false);
      const second = await buildClosure(r.config_dir);
      assert.notEqual(second.toplevel, first.toplevel);
      assert.equal(readFileSync(join(packageOf(second.toplevel, "fio"), "share", "fio", "src", "VERSION"), "utf8"), "second\n");
    });

    test("update=false keeps the library pin; update=true picks up a changed library", async () => {
      const r = await renderConfig({ vm_name: "vm-update", profiles: [], test_suites: [] });
      await lockConfig(r.config_dir);
      const pin = lockedNarHash(r.config_dir, "nixos-flake");
      const before = await buildClosure(r.config_dir);
      const backend = join(bench().libraryDir, "modules", "backends", "imageless.nix");
      const original = readFileSync(backend, "utf8");
      try {
        writeFileSync(
          backend,
          original.replace(
            "environment.systemPackages = [ pkgs.kdevops-tools ];",
            "environment.systemPackages = [ pkgs.kdevops-tools pkgs.strace ];",
          ),
        );
        await lockConfig(r.config_dir, false);
        assert.equal(lockedNarHash(r.config_dir, "nixos-flake"), pin);
        assert.equal((await buildClosure(r.config_dir)).toplevel, before.toplevel);

        await lockConfig(r.config_dir, true);
        assert.notEqual(lockedNarHash(r.config_dir, "nixos-flake"), pin);
        const after = await buildClosure(r.config_dir);
        assert.notEqual(after.toplevel, before.toplevel);
        assert.ok(evaluated(after.toplevel).packages.some((p) => p.startsWith("strace-")));
      } finally {
        writeFileSync(backend, original);
      }
    });

    test("a Nix evaluation error names the option, and keeps the previous result and lock", async () => {
      const r = await renderConfig({ vm_name: "vm-evalerror", profiles: [], test_suites: [] });
      await lockConfig(r.config_dir);
      const good = await buildClosure(r.config_dir);
      const lockBefore = readFileSync(join(r.config_dir, "flake.lock"), "utf8");

      // An operator's hand edit: enabling a gated profile without importing it.
      appendFileSync(join(r.config_dir, "default.nix"), "// { nixos-flake.monitoring.enable = true; }\n");
      await lockConfig(r.config_dir);
      const error = await buildClosure(r.config_dir).catch((e: unknown) => e);
      assert.ok(error instanceof NixError, `expected a NixError, got ${error}`);
      assert.match(error.message, /The option `nixos-flake\.monitoring\.enable' does not exist/);
      assert.match(
        error.command,
        /nix --extra-experimental-features 'nix-command flakes' build 'path:.*vm-evalerror#toplevel' --json --out-link/,
      );
      assert.doesNotMatch(error.message, /at .*\.ts:\d+/, "no stack trace of ours in the message");
      assert.equal(readlinkSync(join(r.config_dir, "result")), good.toplevel);
      assert.equal(readFileSync(join(r.config_dir, "flake.lock"), "utf8"), lockBefore);
    });

    test("a failing derivation is named with its last log lines, once, and how to read all of them; result stays", async () => {
      const src = join(bench().root, "src", "xfsprogs");
      mkdirSync(src, { recursive: true });
      const r = await renderConfig({
        vm_name: "vm-buildfail",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src }],
      });
      await lockConfig(r.config_dir);
      const good = await buildClosure(r.config_dir);
      await renderConfig({
        vm_name: "vm-buildfail",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src, attrs: { preBuild: "echo 'configure: xfs headers missing' >&2; exit 3" } }],
      });
      await lockConfig(r.config_dir);
      const error = await buildClosure(r.config_dir).catch((e: unknown) => e);
      assert.ok(error instanceof NixError, `expected a NixError, got ${error}`);
      assert.match(error.message, /xfsprogs-6\.13\.0\.drv/);
      assert.equal(error.message.split("configure: xfs headers missing").length, 2, error.message);
      // The hint names the command that shows the whole log; it does.
      const hint = /For full logs, run 'nix log (\/nix\/store\/\S+\.drv)'\./.exec(error.message);
      assert.ok(hint, error.message);
      const log = spawnSync(join(nix.bin, "nix"), ["--extra-experimental-features", "nix-command", "log", hint[1] as string], {
        encoding: "utf8",
      });
      assert.equal(log.status, 0, log.stderr);
      assert.match(log.stdout, /configure: xfs headers missing/);
      assert.equal(readlinkSync(join(r.config_dir, "result")), good.toplevel);
    });

    test("an interrupted step stops its nix build, keeps the previous result and lock, and releases its lock", async () => {
      const src = join(bench().root, "src", "xfsprogs-slow");
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, "salt"), `${process.pid}-${Date.now()}`);
      const r = await renderConfig({
        vm_name: "vm-interrupt",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src }],
      });
      await lockConfig(r.config_dir);
      const good = await buildClosure(r.config_dir);
      await renderConfig({
        vm_name: "vm-interrupt",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src, attrs: { preBuild: "sleep 60" } }],
      });
      await lockConfig(r.config_dir);
      const lockBefore = readFileSync(join(r.config_dir, "flake.lock"), "utf8");

      // The step as a Windmill worker runs it: Bun, main, the worker's environment.
      const code = `import { main } from ${JSON.stringify(join(ROOT, "f/nix/build_closure.ts"))}; await main(${JSON.stringify(r.config_dir)});`;
      const child = spawn(join(ROOT, "node_modules/.bin/bun"), ["-e", code], {
        env: { ...bench().env, NIXOS_CLOSURE_PROGRESS: "off" },
      });
      let seen = "";
      child.stderr.on("data", (chunk) => {
        seen += chunk;
      });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_, signal) => resolve(signal)));
      await waitFor(
        30_000,
        "the slow build to start",
        () => /building '.*xfsprogs-6\.13\.0\.drv'/.test(seen),
        () => child.kill("SIGKILL"),
      );
      child.kill("SIGTERM"); // what a cancelled job gets
      assert.equal(
        await within(10_000, "the step to exit", exited, () => child.kill("SIGKILL")),
        "SIGTERM",
        "the step ends by the signal it got",
      );
      assert.match(seen, /interrupted by SIGTERM/);
      assert.deepEqual(
        processesOf(bench().root).filter((command) => command.includes("vm-interrupt#toplevel")),
        [],
        "the nix build went with the step",
      );
      assert.equal(readlinkSync(join(r.config_dir, "result")), good.toplevel);
      assert.equal(readFileSync(join(r.config_dir, "flake.lock"), "utf8"), lockBefore);
      assert.equal(await lockHolderOf(r.config_dir, bench().env), null, "the step released its lock on the way out");
      await lockConfig(r.config_dir, false, { env: { NIXOS_CLOSURE_LOCK_WAIT: "0" } });
    });

    test("a lock with nothing to fill runs no Nix; a changed flake.nix or flake.lock, or another Nix, runs it again", async () => {
      const r = await renderConfig({ vm_name: "vm-lock-current", profiles: [], test_suites: [] });
      const lockFile = join(r.config_dir, "flake.lock");
      const lockRun = async (env: Record<string, string> = {}) => {
        const log = captureLog();
        const result = await lockConfig(r.config_dir, false, { log, env });
        return { ran: /\+ .*nix .*flake lock/.test(log.text()), current: /is current/.test(log.text()), result };
      };
      assert.deepEqual((await lockRun()).ran, true, "the first lock runs Nix");
      const locked = readFileSync(lockFile, "utf8");
      const again = await lockRun();
      assert.deepEqual([again.ran, again.current], [false, true]);
      assert.deepEqual(again.result.lock, JSON.parse(locked), "the same lock is returned");
      assert.equal(readFileSync(lockFile, "utf8"), locked);
      // flake.nix changed (a comment is enough): Nix is asked again.
      appendFileSync(join(r.config_dir, "flake.nix"), "# edited\n");
      assert.equal((await lockRun()).ran, true);
      assert.equal((await lockRun()).ran, false);
      // flake.lock edited by hand (the same JSON, laid out otherwise): Nix is asked again.
      writeFileSync(lockFile, JSON.stringify(JSON.parse(readFileSync(lockFile, "utf8"))));
      assert.equal((await lockRun()).ran, true);
      // A file not ours where the stamp goes: Nix is asked every time, and the file stays.
      const stamp = `${r.config_dir}.locked.json`;
      writeFileSync(stamp, "not ours\n");
      const foreign = captureLog();
      await lockConfig(r.config_dir, false, { log: foreign });
      assert.match(foreign.text(), /\+ .*nix .*flake lock/);
      assert.match(foreign.text(), /locked\.json is not a file of nixos-closure/);
      assert.equal(readFileSync(stamp, "utf8"), "not ours\n");
      rmSync(stamp);
      assert.equal((await lockRun()).ran, true);
      // Another Nix binary: asked again.
      const other = testNixes().find((n) => n.bin !== nix.bin);
      if (other) assert.equal((await lockRun({ NIX_BIN: other.bin })).ran, true);
      // update=true always runs Nix.
      const log = captureLog();
      await lockConfig(r.config_dir, true, { log });
      assert.match(log.text(), /\+ .*nix .*(flake update .*|--update-input )nixos-flake/);
    });

    test("a failed lock restores flake.lock", async () => {
      const src = join(bench().root, "src", "libbpf");
      mkdirSync(src, { recursive: true });
      const r = await renderConfig({
        vm_name: "vm-lockfail",
        profiles: [],
        test_suites: [],
        overrides: [{ pkg: "libbpf-tools", src }],
      });
      await lockConfig(r.config_dir);
      const lockBefore = readFileSync(join(r.config_dir, "flake.lock"), "utf8");
      // The flake now names a library that is not there: locking it again fails.
      const flake = join(r.config_dir, "flake.nix");
      const text = readFileSync(flake, "utf8");
      writeFileSync(flake, text.replace(/path:[^"]*nixos-flake"/, 'path:/nonexistent/nixos-flake"'));
      try {
        const error = await lockConfig(r.config_dir, true).catch((e: unknown) => e);
        assert.ok(error instanceof NixError, `expected a NixError, got ${error}`);
        assert.match(error.message, /nonexistent/);
        assert.equal(readFileSync(join(r.config_dir, "flake.lock"), "utf8"), lockBefore);
      } finally {
        writeFileSync(flake, text);
      }
    });

    test("two steps on one config dir do not interleave: the second waits", async () => {
      // A build of a few seconds (a source of this run's own, a builder that sleeps): long enough to be caught holding the lock.
      const src = join(bench().root, "src", "xfsprogs-concurrent");
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, "salt"), `${process.pid}-${Date.now()}`);
      const r = await renderConfig({
        vm_name: "vm-concurrent",
        profiles: [],
        test_suites: ["fstests"],
        overrides: [{ pkg: "xfsprogs", src, attrs: { preBuild: "sleep 3" } }],
      });
      await lockConfig(r.config_dir);
      const buildLog = captureLog();
      const lockLog = captureLog();
      const building = buildClosure(r.config_dir, { log: buildLog });
      await waitFor(10_000, "build_closure to take the lock", () =>
        (readIfExists(`${r.config_dir}.lock`) ?? "").includes('"step":"build_closure"'),
      );
      const locking = lockConfig(r.config_dir, false, { log: lockLog }).then((locked) => ({ locked, at: Date.now() }));
      const built = await within(120_000, "the build", building);
      const builtAt = Date.now();
      const { locked, at } = await within(60_000, "the lock step after it", locking);
      assert.equal(built.config_dir, r.config_dir, "both steps succeed");
      assert.equal(locked.config_dir, r.config_dir);
      assert.match(lockLog.text(), /waiting for build_closure \(pid \d+/);
      assert.ok(at >= builtAt, "the lock step finished after the build released the config dir");
      assert.doesNotMatch(
        lockLog.text().split("waiting for")[0] ?? "",
        /flake lock/,
        "no Nix command of the lock step ran before it got the lock",
      );
    });

    test("a config dir that does not exist or holds no flake.nix is named", async () => {
      await assert.rejects(
        lockConfig(join(bench().root, "nowhere")),
        (e: Error) => e instanceof SetupError && /does not exist: run render_config first/.test(e.message),
      );
      mkdirSync(join(bench().root, "empty"));
      await assert.rejects(buildClosure(join(bench().root, "empty")), /holds no flake\.nix/);
      await assert.rejects(buildClosure("relative/dir"), /must be an absolute path/);
    });
  });
}

describe("without nix", () => {
  test("a NIX_BIN without nix is named, never passed over for another Nix on PATH", async () => {
    const wb = createWorkbench(null);
    try {
      assert.ok(
        process.env.PATH?.split(":").some((dir) => existsSync(join(dir, "nix"))),
        "a nix on PATH to be tempted by",
      );
      const steps = vmSteps(wb);
      const r = await steps.render({ vm_name: "vm-nonix", profiles: [], test_suites: [] });
      await assert.rejects(steps.lock(r.config_dir), (e: Error) => {
        assert.ok(e instanceof SetupError);
        assert.match(e.message, /NIX_BIN=.*no-nix holds no nix: point NIX_BIN at the directory that holds `nix`, or unset it/);
        return true;
      });
      await assert.rejects(steps.build(r.config_dir), /holds no nix/);
    } finally {
      wb.cleanup();
    }
  });

  test("no NIX_BIN and no nix on PATH: says where it looked and how to fix it", async (t) => {
    if (existsSync("/nix/var/nix/profiles/default/bin/nix")) {
      t.skip("this machine has a nix in Nix's default profile");
      return;
    }
    const wb = createWorkbench(null, { PATH: "/nonexistent-empty-path" });
    try {
      const steps = vmSteps(wb, { env: { NIX_BIN: "" } });
      const r = await steps.render({ vm_name: "vm-nonix", profiles: [], test_suites: [] });
      await assert.rejects(steps.lock(r.config_dir), (e: Error) => {
        assert.ok(e instanceof SetupError);
        assert.match(
          e.message,
          /nix was not found: looked in \/nix\/var\/nix\/profiles\/default\/bin and on PATH \(\/nonexistent-empty-path\)/,
        );
        assert.match(e.message, /set NIX_BIN/);
        return true;
      });
    } finally {
      wb.cleanup();
    }
  });
});
