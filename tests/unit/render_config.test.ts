import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { RenderInput } from "../../f/nix/lib/config/model.ts";
import { InputError, SetupError } from "../../f/nix/lib/core/errors.ts";
import { main } from "../../f/nix/render_config.ts";
import { ED25519, MANAGED } from "../helpers/golden_cases.ts";
import { asWorker, captureLog, holdLock, type StepOptions, vmSteps } from "../helpers/steps.ts";
import { createWorkbench, snapshot, useWorkbench } from "../helpers/workbench.ts";

describe("render_config on disk", () => {
  const bench = useWorkbench(null);
  const renderConfig = (input: RenderInput, options: StepOptions = {}) => vmSteps(bench(), options).render(input);

  test("writes flake.nix and default.nix into $WORKERS_DIR/$WORKER_INDEX/nix/<vm_name>", async () => {
    const result = await renderConfig({ vm_name: "vm-a", profiles: ["devel"], test_suites: [] });
    const dir = join(bench().workersDir, "0", "nix", "vm-a");
    assert.equal(result.config_dir, dir);
    assert.equal(result.vm_name, "vm-a");
    assert.equal(result.nixos_flake, bench().libraryDir);
    assert.equal(readFileSync(join(dir, "flake.nix"), "utf8"), result.flake);
    assert.equal(readFileSync(join(dir, "default.nix"), "utf8"), result.default);
    assert.match(result.flake, new RegExp(`nixos-flake.url = "path:${bench().libraryDir}";`));
  });

  test("a second render with the same input leaves the directory byte-identical and untouched", async () => {
    const render = () =>
      renderConfig({
        vm_name: "vm-b",
        shares: { "/mnt/x": { tag: "x" } },
        ssh_keys: [ED25519],
        user_name: "kdevops",
        home: true,
      });
    await render();
    const dir = join(bench().workersDir, "0", "nix", "vm-b");
    const before = snapshot(dir);
    const mtimes = ["flake.nix", "default.nix"].map((f) => statSync(join(dir, f)).mtimeMs);
    await new Promise((r) => setTimeout(r, 20));
    await render();
    assert.deepEqual(snapshot(dir), before);
    assert.deepEqual(
      ["flake.nix", "default.nix"].map((f) => statSync(join(dir, f)).mtimeMs),
      mtimes,
    );
    assert.deepEqual([...snapshot(dir).keys()].sort(), [join(dir, "default.nix"), join(dir, "flake.nix")]);
  });

  test("bad input creates no directory and touches no file", async () => {
    await assert.rejects(renderConfig({ vm_name: "vm-bad", profiles: ["nope"] }), InputError);
    assert.equal(existsSync(join(bench().workersDir, "0", "nix", "vm-bad")), false);

    await renderConfig({ vm_name: "vm-c", profiles: ["devel"], test_suites: [] });
    const dir = join(bench().workersDir, "0", "nix", "vm-c");
    const before = snapshot(dir);
    await assert.rejects(
      renderConfig({ vm_name: "vm-c", profiles: ["devel"], test_suites: [], shares: { "/nix/store": { tag: "x" } } }),
      /imageless backend/,
    );
    await assert.rejects(
      renderConfig({ vm_name: "vm-c", profiles: ["devel"], test_suites: [], ssh_keys: ["ssh-ed25519 AAAA"] }),
      /ssh_keys\[0\]/,
    );
    assert.deepEqual(snapshot(dir), before);
  });

  test("trusts the managed key first and prints a note when there is no key at all", async () => {
    const log = captureLog();
    await renderConfig({ vm_name: "vm-nokey", profiles: [], test_suites: [] }, { log });
    assert.match(log.text(), /the guest will accept no SSH key/);
    assert.match(log.text(), /----- .*default\.nix -----/);

    mkdirSync(join(bench().systemDir, "ssh"), { recursive: true });
    writeFileSync(join(bench().systemDir, "ssh", "id_ed25519.pub"), `${MANAGED}\n`);
    try {
      const result = await renderConfig({ vm_name: "vm-key", profiles: [], test_suites: [], ssh_keys: [ED25519] });
      const managed = result.default.indexOf(MANAGED.split(" ")[1] as string);
      assert.ok(managed > 0, "the managed key is trusted");
      assert.ok(managed < result.default.indexOf(ED25519.split(" ")[1] as string), "first");
    } finally {
      rmSync(join(bench().systemDir, "ssh"), { recursive: true });
    }
  });

  test("a missing library is reported with where it looked, and nothing is written", async () => {
    await assert.rejects(
      renderConfig({ vm_name: "vm-nolib" }, { env: { NIXOS_FLAKE_DIR: join(bench().root, "no-such-library") } }),
      (e: Error) => e instanceof SetupError && /no-such-library.*NIXOS_FLAKE_DIR/s.test(e.message),
    );
    assert.equal(existsSync(join(bench().workersDir, "0", "nix", "vm-nolib")), false);
  });

  test("a template without its anchors fails loudly, and nothing is written", async () => {
    const lib = join(bench().root, "changed-library");
    mkdirSync(join(lib, "templates", "imageless"), { recursive: true });
    writeFileSync(join(lib, "templates", "imageless", "flake.nix"), '{ inputs.nixos-flake.url = "github:x/y"; }\n');
    await assert.rejects(
      renderConfig({ vm_name: "vm-anchor" }, { env: { NIXOS_FLAKE_DIR: lib } }),
      /expected exactly one "path:\/path\/to\/nixos-flake"/,
    );
    assert.equal(existsSync(join(bench().workersDir, "0", "nix", "vm-anchor")), false);
  });

  test("a render waits for another step on the same config dir, then refuses, changing nothing", async () => {
    await renderConfig({ vm_name: "vm-busy", profiles: ["devel"], test_suites: [] });
    const dir = join(bench().workersDir, "0", "nix", "vm-busy");
    const before = snapshot(dir);
    // Held before the render starts, and named: a render taking the lock first would have nothing to wait for.
    const held = await holdLock(dir, "build_closure");
    try {
      await assert.rejects(
        renderConfig(
          { vm_name: "vm-busy", profiles: ["monitoring"], test_suites: [] },
          { env: { NIXOS_CLOSURE_LOCK_WAIT: "0.3" } },
        ),
        /in use by build_closure .*refusing to run render_config/s,
      );
      assert.deepEqual(snapshot(dir), before);
    } finally {
      await held.release();
    }
  });

  test("a worker without WORKERS_DIR is told what to set", async () => {
    await assert.rejects(renderConfig({ vm_name: "vm-x" }, { env: { WORKERS_DIR: "" } }), /WORKERS_DIR is not set/);
  });

  test("a WORKERS_DIR another user could make lead elsewhere is refused", { skip: process.getuid?.() !== 0 }, async () => {
    const theirs = join(bench().root, `theirs-${process.pid}`);
    mkdirSync(theirs, { mode: 0o755 });
    execFileSync("chown", ["4242:4242", theirs]);
    await assert.rejects(
      async () => renderConfig({ vm_name: "vm-x" }, { env: { WORKERS_DIR: join(theirs, "workers") } }),
      /WORKERS_DIR=.* is in no safe place: .*belongs to uid 4242, neither root nor uid 0/,
    );
    assert.equal(existsSync(join(theirs, "workers")), false, "nothing was made there");
  });

  test("a lock wait that is no number of seconds is refused, not guessed", async () => {
    for (const wait of ["abc", "-1", "1e9", "10s"]) {
      await assert.rejects(
        async () => renderConfig({ vm_name: "vm-x" }, { env: { NIXOS_CLOSURE_LOCK_WAIT: wait } }),
        /NIXOS_CLOSURE_LOCK_WAIT=".*" must be a number of seconds from 0 to 86400/,
        wait,
      );
    }
  });

  test("the Windmill main maps its form onto the same render", async () => {
    const result = await asWorker(bench(), () =>
      main("vm-main", ["devel"], [], { "/mnt/x": { tag: "x" } }, [], [], [ED25519], "john.doe", true, "/home/john.doe"),
    );
    const direct = await renderConfig({
      vm_name: "vm-main",
      profiles: ["devel"],
      test_suites: [],
      shares: { "/mnt/x": { tag: "x" } },
      ssh_keys: [ED25519],
      user_name: "john.doe",
      home: true,
      home_dir: "/home/john.doe",
    });
    assert.deepEqual(result, direct);
    assert.match(result.default, /users\.users\."john\.doe"/);
  });
});

describe("render_config where the worker's paths are not URL-safe", () => {
  test("refuses before writing anything", async () => {
    const wb = createWorkbench(null);
    const workersDir = join(wb.root, "my workers");
    try {
      await assert.rejects(
        vmSteps(wb, { env: { WORKERS_DIR: workersDir } }).render({ vm_name: "vm" }),
        /the config dir ".*my workers.*" contains " "/,
      );
      assert.equal(existsSync(workersDir), false);
    } finally {
      wb.cleanup();
    }
  });
});

describe("render_config on a full or read-only disk", () => {
  test("says what failed on which path, leaves no half-written file, and the next run recovers", async (t) => {
    const wb = createWorkbench(null);
    const disk = join(wb.root, "small-disk");
    mkdirSync(disk);
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], { stdio: "pipe" });
    } catch (error) {
      wb.cleanup();
      t.skip(`cannot mount a small tmpfs here: ${(error as Error).message.split("\n")[0]}`);
      return;
    }
    const workersDir = join(disk, "workers");
    const options = { env: { WORKERS_DIR: workersDir } };
    const render = () => asWorker(wb, () => main("vm-disk", ["devel"], []), options);
    try {
      await render();
      const dir = join(workersDir, "0", "nix", "vm-disk");
      const before = snapshot(dir);
      // Fill the disk, then ask for a render that writes a new default.nix.
      const filler = join(disk, "filler");
      try {
        execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4k", "count=64"], { stdio: "pipe" });
      } catch {} // dd stops when the disk is full, which is the point
      await assert.rejects(
        asWorker(wb, () => main("vm-disk", ["monitoring"], []), options),
        (e: Error) =>
          e instanceof SetupError && /no space left on the device \(ENOSPC\)/.test(e.message) && e.message.includes(dir),
      );
      assert.deepEqual(snapshot(dir), before, "the previous files are intact, no temporary file is left");
      rmSync(filler);
      assert.match((await asWorker(wb, () => main("vm-disk", ["monitoring"], []), options)).default, /monitoring/);

      execFileSync("mount", ["-o", "remount,ro", disk]);
      await assert.rejects(
        asWorker(wb, () => main("vm-disk", ["devel"], []), options),
        (e: Error) => e instanceof SetupError && /the file system is read-only \(EROFS\)/.test(e.message),
      );
    } finally {
      execFileSync("umount", [disk]);
      wb.cleanup();
    }
  });
});
