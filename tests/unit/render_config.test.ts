import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { withConfigDirLock } from "../../f/nix/dir_lock.ts";
import { InputError, SetupError } from "../../f/nix/errors.ts";
import { main as renderConfig } from "../../f/nix/render_config.ts";
import { ED25519, MANAGED } from "../helpers/golden_cases.ts";
import { createWorkbench, snapshot, useWorkbench } from "../helpers/workbench.ts";

describe("render_config on disk", () => {
  const bench = useWorkbench(null);

  test("writes flake.nix and default.nix into $WORKERS_DIR/$WORKER_INDEX/nix/<vm_name>", async () => {
    const result = await renderConfig("vm-a", ["devel"], []);
    const dir = join(bench().workersDir, "0", "nix", "vm-a");
    assert.equal(result.config_dir, dir);
    assert.equal(result.vm_name, "vm-a");
    assert.equal(result.nixos_flake, bench().libraryDir);
    assert.equal(readFileSync(join(dir, "flake.nix"), "utf8"), result.flake);
    assert.equal(readFileSync(join(dir, "default.nix"), "utf8"), result.default);
    assert.match(result.flake, new RegExp(`nixos-flake.url = "path:${bench().libraryDir}";`));
  });

  test("a second render with the same input leaves the directory byte-identical and untouched", async () => {
    const render = () => renderConfig("vm-b", null, null, { "/mnt/x": { tag: "x" } }, [], [], [ED25519], "kdevops", true, "");
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
    await assert.rejects(renderConfig("vm-bad", ["nope" as "devel"]), InputError);
    assert.equal(existsSync(join(bench().workersDir, "0", "nix", "vm-bad")), false);

    await renderConfig("vm-c", ["devel"], []);
    const dir = join(bench().workersDir, "0", "nix", "vm-c");
    const before = snapshot(dir);
    await assert.rejects(renderConfig("vm-c", ["devel"], [], { "/nix/store": { tag: "x" } }), /imageless backend/);
    await assert.rejects(renderConfig("vm-c", ["devel"], [], {}, [], [], ["ssh-ed25519 AAAA"]), /ssh_keys\[0\]/);
    assert.deepEqual(snapshot(dir), before);
  });

  test("trusts the managed key first and prints a note when there is no key at all", async () => {
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => stderr.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      await renderConfig("vm-nokey", [], []);
    } finally {
      process.stderr.write = write;
    }
    assert.match(stderr.join(""), /the guest will accept no SSH key/);
    assert.match(stderr.join(""), /----- .*default\.nix -----/);

    mkdirSync(join(bench().systemDir, "ssh"), { recursive: true });
    writeFileSync(join(bench().systemDir, "ssh", "id_ed25519.pub"), `${MANAGED}\n`);
    try {
      const result = await renderConfig("vm-key", [], [], {}, [], [], [ED25519]);
      const keys = result.default.indexOf(MANAGED.split(" ")[1] as string);
      assert.ok(keys > 0 && keys < result.default.indexOf(ED25519.split(" ")[1] as string));
    } finally {
      rmSync(join(bench().systemDir, "ssh"), { recursive: true });
    }
  });

  test("a missing library is reported with where it looked, and nothing is written", async () => {
    const restoreLib = bench().apply({ NIXOS_FLAKE_DIR: join(bench().root, "no-such-library") });
    try {
      await assert.rejects(
        renderConfig("vm-nolib"),
        (e: Error) => e instanceof SetupError && /no-such-library.*NIXOS_FLAKE_DIR/s.test(e.message),
      );
      assert.equal(existsSync(join(bench().workersDir, "0", "nix", "vm-nolib")), false);
    } finally {
      restoreLib();
    }
  });

  test("a template without its anchors fails loudly, and nothing is written", async () => {
    const lib = join(bench().root, "changed-library");
    mkdirSync(join(lib, "templates", "imageless"), { recursive: true });
    writeFileSync(join(lib, "templates", "imageless", "flake.nix"), '{ inputs.nixos-flake.url = "github:x/y"; }\n');
    const restoreLib = bench().apply({ NIXOS_FLAKE_DIR: lib });
    try {
      await assert.rejects(renderConfig("vm-anchor"), /expected exactly one "path:\/path\/to\/nixos-flake"/);
      assert.equal(existsSync(join(bench().workersDir, "0", "nix", "vm-anchor")), false);
    } finally {
      restoreLib();
    }
  });

  test("a render waits for another step on the same config dir, then refuses, changing nothing", async () => {
    await renderConfig("vm-busy", ["devel"], []);
    const dir = join(bench().workersDir, "0", "nix", "vm-busy");
    const before = snapshot(dir);
    const restoreWait = bench().apply({ NIXOS_CLOSURE_LOCK_WAIT: "0.3" });
    let release: () => void = () => {};
    const holder = withConfigDirLock(dir, "build_closure", () => new Promise<void>((r) => (release = r)));
    try {
      await assert.rejects(
        renderConfig("vm-busy", ["monitoring"], []),
        /in use by build_closure .*refusing to run render_config/s,
      );
      assert.deepEqual(snapshot(dir), before);
    } finally {
      release();
      await holder;
      restoreWait();
    }
  });

  test("a worker without WORKERS_DIR is told what to set", async () => {
    const restoreEnv = bench().apply({ WORKERS_DIR: "" });
    try {
      await assert.rejects(renderConfig("vm-x"), /WORKERS_DIR is not set/);
    } finally {
      restoreEnv();
    }
  });
});

describe("render_config where the worker's paths are not URL-safe", () => {
  test("refuses before writing anything", async () => {
    const wb = createWorkbench(null);
    const workersDir = join(wb.root, "my workers");
    const restore = wb.apply({ WORKERS_DIR: workersDir });
    try {
      await assert.rejects(renderConfig("vm"), /the config dir ".*my workers.*" contains " "/);
      assert.equal(existsSync(workersDir), false);
    } finally {
      restore();
      wb.cleanup();
    }
  });
});
