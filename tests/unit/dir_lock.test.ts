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
import { lockHolder, waitFor, within } from "../helpers/steps.ts";

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
      // A slow flock(1) widens the window between opening the lock file and locking it.
      const slow = join(dir, "slow-bin");
      mkdirSync(slow);
      writeFileSync(
        join(slow, "flock"),
        `#!/bin/sh\nsleep 0.6\nexec ${execFileSync("sh", ["-c", "command -v flock"], { encoding: "utf8" }).trim()} "$@"\n`,
        {
          mode: 0o755,
        },
      );
      let releaseFirst: () => void = () => {};
      const first = withDirLock(vm, lockHolder("remove", 5), () => new Promise<void>((r) => (releaseFirst = r)));
      await new Promise((r) => setTimeout(r, 300));
      // The waiter opens the lock file now, and locks it 0.6 s later.
      const inside = join(dir, "inside");
      const enter = async () => {
        writeFileSync(inside, "", { flag: "wx" }); // a second holder at once would fail here
        await new Promise((r) => setTimeout(r, 300));
        rmSync(inside);
      };
      const waiter = withDirLock(vm, { ...lockHolder("build_closure", 10), env: { PATH: `${slow}:${process.env.PATH}` } }, enter);
      await new Promise((r) => setTimeout(r, 200));
      // The holder deletes the file and lets go; a third step takes the path at once.
      rmSync(lockPathFor(vm));
      releaseFirst();
      await first;
      let releaseThird: () => void = () => {};
      const third = withDirLock(vm, lockHolder("render_config", 5), async () => {
        writeFileSync(inside, "", { flag: "wx" });
        await new Promise<void>((r) => (releaseThird = r));
        rmSync(inside);
      });
      await new Promise((r) => setTimeout(r, 1200)); // the waiter's slow flock has long succeeded on the old file
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
