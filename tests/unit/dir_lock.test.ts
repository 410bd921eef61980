// The lock of a config dir or a root (lib/worker/dir_lock.ts): one holder
// at a time, waiters told who holds it, nothing taken over, released when
// its holder dies; a file at its path that is not ours is never written.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { readIfExists } from "../../f/nix/lib/core/files.ts";
import { lockHolderOf, lockPathFor, withDirLock } from "../../f/nix/lib/worker/dir_lock.ts";
import { holdLock, lockHolder, waitFor, within } from "../helpers/steps.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");

describe("the lock of a directory", () => {
  test("a second holder waits, then refuses clearly; a lock file left behind, empty or garbage, blocks nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lock-"));
    const configDir = join(dir, "vm");
    mkdirSync(configDir);
    try {
      let release: () => void = () => {};
      const first = withDirLock(configDir, lockHolder("build_closure", 0.5), () => new Promise<void>((r) => (release = r)));
      await waitFor(5_000, "the first holder", () => (readIfExists(lockPathFor(configDir)) ?? "").includes("build_closure"));
      assert.equal(await lockHolderOf(configDir, { PATH: process.env.PATH }), "build_closure");
      await assert.rejects(
        withDirLock(configDir, lockHolder("lock_config", 0.5), async () => {}),
        /in use by build_closure \(pid \d+ .*refusing to run lock_config/s,
      );
      release();
      await first;
      assert.equal(await lockHolderOf(configDir, { PATH: process.env.PATH }), null);

      // What a crash or a full disk can leave of a lock file of ours: nothing, or a cut-short header and owner.
      for (const leftover of ["", "nixos-clo", 'nixos-closure lock\n{"pid":12', 'nixos-closure lock\n{"pid":1,"step":"x"}\n']) {
        writeFileSync(lockPathFor(configDir), leftover);
        assert.equal(await withDirLock(configDir, lockHolder("lock_config", 0), async () => 42), 42, JSON.stringify(leftover));
      }
      // A file of someone else's at the lock's path is refused and left exactly as it was, never emptied.
      for (const theirs of ['[package]\nname = "x"\n', "{not json"]) {
        writeFileSync(lockPathFor(configDir), theirs);
        await assert.rejects(
          withDirLock(configDir, lockHolder("lock_config", 0), async () => 42),
          /exists and is not a lock of nixos-closure; nothing was changed/,
        );
        assert.equal(readFileSync(lockPathFor(configDir), "utf8"), theirs);
      }
      rmSync(lockPathFor(configDir));
      writeFileSync(join(dir, "victim"), "precious\n");
      symlinkSync(join(dir, "victim"), lockPathFor(configDir));
      await assert.rejects(
        withDirLock(configDir, lockHolder("lock_config", 0), async () => 42),
        /is a symbolic link/,
      );
      assert.equal(readFileSync(join(dir, "victim"), "utf8"), "precious\n");
      rmSync(lockPathFor(configDir));
      execFileSync("mkfifo", [lockPathFor(configDir)]);
      await within(
        5_000,
        "a FIFO at the lock's path",
        assert.rejects(
          withDirLock(configDir, lockHolder("x", 0), async () => 42),
          /not a lock/,
        ),
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("eight waiters on one lock: never two holders at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lock-"));
    try {
      const inside = join(dir, "inside");
      let entered = 0;
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          withDirLock(dir, lockHolder(`waiter-${i}`, 30), async () => {
            // O_EXCL: a second holder inside at the same time would fail here.
            writeFileSync(inside, String(i), { flag: "wx" });
            await new Promise((r) => setTimeout(r, 30));
            rmSync(inside);
            entered++;
          }),
        ),
      );
      assert.equal(entered, 8);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("a lock file deleted by its holder (remove) never leaves two holders: a taker of the old file takes the path afresh", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lock-"));
    try {
      const vm = join(dir, "vm");
      // The waiter's flock(1) waits at a gate the test opens, and notes how each try ended: the test says when the
      // waiter, which opened the lock file before it was deleted, locks it.
      const gated = join(dir, "gated-bin");
      const gate = join(dir, "gate");
      const tries = join(dir, "tries");
      mkdirSync(gated);
      const flock = execFileSync("sh", ["-c", "command -v flock"], { encoding: "utf8" }).trim();
      writeFileSync(
        join(gated, "flock"),
        `#!/bin/sh\nwhile [ ! -e ${gate} ]; do sleep 0.05; done\n${flock} "$@"\ncode=$?\necho $code >> ${tries}\nexit $code\n`,
        { mode: 0o755 },
      );
      const first = await holdLock(vm, "remove");
      const inside = join(dir, "inside");
      const enter = async () => {
        writeFileSync(inside, "", { flag: "wx" }); // a second holder at once would fail here
        await new Promise((r) => setTimeout(r, 300));
        rmSync(inside);
      };
      // The waiter opens the lock file at once, and locks it when the gate opens.
      const waiter = withDirLock(
        vm,
        { ...lockHolder("build_closure", 10), env: { PATH: `${gated}:${process.env.PATH}` } },
        enter,
      );
      // The holder deletes the file and lets go; a third step takes the path afresh.
      rmSync(lockPathFor(vm));
      await first.release();
      let releaseThird: () => void = () => {};
      let thirdIn: () => void = () => {};
      const entered = new Promise<void>((r) => (thirdIn = r));
      const third = withDirLock(vm, lockHolder("render_config", 5), async () => {
        writeFileSync(inside, "", { flag: "wx" });
        thirdIn();
        await new Promise<void>((r) => (releaseThird = r));
        rmSync(inside);
      });
      await within(10_000, "the third step to take the path", entered);
      // The waiter locks the old file (free: its holder let go), finds it is no longer the path's, and tries the path
      // afresh: the third holds it (flock's exit 75), so the waiter waits.
      writeFileSync(gate, "");
      await waitFor(10_000, "the waiter to find the path held", () => (readIfExists(tries) ?? "").split("\n").includes("75"));
      assert.equal((readIfExists(tries) ?? "").split("\n")[0], "0", "its first try locked the old file");
      releaseThird();
      await Promise.all([third, waiter]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("a holder killed with SIGKILL releases the lock at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lock-"));
    try {
      const code = `import { withDirLock } from ${JSON.stringify(join(ROOT, "f/nix/lib/worker/dir_lock.ts"))};
        await withDirLock(${JSON.stringify(dir)}, { step: "doomed", log: { info() {} }, env: process.env, lockWaitSeconds: 0, signal: new AbortController().signal },
          () => new Promise(() => { console.log("holding"); setInterval(() => {}, 1000); }));`;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const exited = new Promise((r) => child.on("exit", r));
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      await waitFor(
        20_000,
        "the child to hold the lock",
        () => out.includes("holding"),
        () => child.kill("SIGKILL"),
      );
      assert.equal(await lockHolderOf(dir, { PATH: process.env.PATH }), "doomed");
      child.kill("SIGKILL");
      await within(10_000, "the killed holder to exit", exited, () => child.kill("SIGKILL"));
      assert.equal(await withDirLock(dir, lockHolder("next", 2), async () => "taken"), "taken");
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
