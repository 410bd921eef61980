import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { parseBootspec, readBootInfo } from "../../f/nix/lib/build/bootspec.ts";
import { formatClosureDiff, parseDiffClosures } from "../../f/nix/lib/build/report.ts";
import { isOursOrFree, readCache, readIfExists, writeCache, writeFileAtomic } from "../../f/nix/lib/core/files.ts";
import { shellCommand, shellQuote, shortCommand, streamLogger, type Verbosity } from "../../f/nix/lib/core/log.ts";
import { closestName, didYouMean } from "../../f/nix/lib/core/suggest.ts";
import { parseBuildJson, parsePathInfoJson } from "../../f/nix/lib/nix/json.ts";
import { updateInputsArgs } from "../../f/nix/lib/nix/operations.ts";
import { nixErrorText } from "../../f/nix/lib/nix/run.ts";
import { sourcePathOf } from "../../f/nix/lib/nix/store_path.ts";
import { type NixVersion, parseNixVersion } from "../../f/nix/lib/nix/version.ts";
import { lockHolderOf, lockPathFor, withDirLock } from "../../f/nix/lib/worker/dir_lock.ts";
import { lockHolder, waitFor, within } from "../helpers/steps.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");

describe("bootspec", () => {
  const spec = (v1: object, extra: object = {}) => JSON.stringify({ "org.nixos.bootspec.v1": v1, ...extra });
  test("reads init and initrd, ignoring unknown keys and extensions", () => {
    const text = spec(
      {
        init: "/s/init",
        initrd: "/s/initrd",
        kernel: "/k",
        kernelParams: [],
        label: "l",
        system: "x86_64-linux",
        toplevel: "/s",
        future: 1,
      },
      { "org.nixos.specialisation.v1": {}, "org.example.v9": { x: 1 } },
    );
    assert.deepEqual(parseBootspec(text, "f"), { init: "/s/init", initrd: "/s/initrd" });
  });
  test("initrd may be absent; kernel may be absent", () => {
    assert.deepEqual(parseBootspec(spec({ init: "/s/init", label: "l" }), "f"), { init: "/s/init", initrd: null });
  });
  test("malformed boot.json is a clear error naming the file", () => {
    assert.throws(() => parseBootspec("{not json", "/nix/store/x/boot.json"), /\/nix\/store\/x\/boot\.json is not valid JSON/);
    assert.throws(() => parseBootspec("{}", "/b.json"), /\/b\.json has no "org\.nixos\.bootspec\.v1"/);
    assert.throws(() => parseBootspec(spec({ initrd: "/i" }), "/b.json"), /\/b\.json: .*init is missing/);
    assert.throws(() => parseBootspec(spec({ init: "/i", initrd: 3 }), "/b.json"), /initrd is not a string/);
  });
  test("no boot.json: init of the toplevel, with a warning", () => {
    const dir = mkdtempSync(join(tmpdir(), "bootspec-"));
    try {
      writeFileSync(join(dir, "init"), "#!/bin/sh\n");
      const info = readBootInfo(dir);
      assert.equal(info.init, join(dir, "init"));
      assert.equal(info.initrd, null);
      assert.equal(info.bootJson, null);
      assert.match(info.warnings[0] ?? "", /no boot\.json/);
      rmSync(join(dir, "init"));
      assert.throws(() => readBootInfo(dir), /neither boot\.json nor init/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe("Nix versions and output shapes", () => {
  test("parses the flavours", () => {
    assert.deepEqual(parseNixVersion("nix (Nix) 2.8.0\n"), {
      flavour: "nix",
      major: 2,
      minor: 8,
      patch: 0,
      text: "nix (Nix) 2.8.0",
    });
    assert.equal(parseNixVersion("nix (Lix, like Nix) 2.93.0")?.flavour, "lix");
    assert.equal(parseNixVersion("nix (Determinate Nix 3.6.2) 2.29.0")?.flavour, "determinate");
    assert.equal(parseNixVersion("nix (Determinate Nix 3.6.2) 2.29.0")?.minor, 29);
    assert.equal(parseNixVersion("hello"), null);
  });
  test("updating inputs: --update-input before 2.19, flake update --flake from 2.19 and on Lix", () => {
    const v = (text: string) => parseNixVersion(text) as NixVersion;
    assert.deepEqual(updateInputsArgs(v("nix (Nix) 2.18.9"), "path:/d", ["a", "b"]), [
      "flake",
      "lock",
      "path:/d",
      "--update-input",
      "a",
      "--update-input",
      "b",
    ]);
    assert.deepEqual(updateInputsArgs(v("nix (Nix) 2.19.0"), "path:/d", ["a"]), ["flake", "update", "--flake", "path:/d", "a"]);
    assert.deepEqual(updateInputsArgs(v("nix (Lix, like Nix) 2.90.0"), "path:/d", ["a"]), [
      "flake",
      "update",
      "--flake",
      "path:/d",
      "a",
    ]);
    assert.deepEqual(updateInputsArgs(v("nix (Nix) 3.0.0"), "path:/d", ["a"]), ["flake", "update", "--flake", "path:/d", "a"]);
  });
  test("nix build --json, with and without timing keys", () => {
    assert.deepEqual(parseBuildJson('[{"drvPath":"/d.drv","outputs":{"out":"/o"}}]'), [
      { drvPath: "/d.drv", outputs: { out: "/o" } },
    ]);
    assert.deepEqual(parseBuildJson('[{"drvPath":"/d.drv","outputs":{"out":null},"startTime":1,"stopTime":2}]'), [
      { drvPath: "/d.drv", outputs: {} },
    ]);
    assert.throws(() => parseBuildJson("building..."), /not JSON/);
  });
  test("nix path-info --json: a list before 2.19, an object after, base names in newer formats", () => {
    const list = '[{"path":"/nix/store/a-x","narSize":10,"closureSize":30,"references":["/nix/store/b-y"]}]';
    const object = '{"/nix/store/a-x":{"narSize":10,"closureSize":30,"references":["/nix/store/b-y"]}}';
    const bare = '{"a-x":{"narSize":10,"closureSize":30,"references":["/nix/store/b-y"]}}';
    const expected = [{ path: "/nix/store/a-x", narSize: 10, references: ["/nix/store/b-y"] }];
    assert.deepEqual(parsePathInfoJson(list), expected);
    assert.deepEqual(parsePathInfoJson(object), expected);
    assert.deepEqual(parsePathInfoJson(bare), expected);
  });
  test("Nix's error text: from its first error: line, without trace frames", () => {
    const nix28Build = [
      "building '/nix/store/a-xfsprogs.drv'...",
      "error: builder for '/nix/store/a-xfsprogs.drv' failed with exit code 3;",
      "       last 10 log lines:",
      "       > configure: xfs headers missing",
      "error: 1 dependencies of derivation '/nix/store/b-system.drv' failed to build",
    ];
    assert.equal(nixErrorText(nix28Build), nix28Build.slice(1).join("\n"));
    const nix226Eval = [
      "error:",
      "       … while evaluating the attribute 'toplevel'",
      "         at /nix/store/x/lib/modules.nix:240:15:",
      "          240|     { inherit config options; };",
      "",
      "       (stack trace truncated; use '--show-trace' to show the full, detailed trace)",
      "",
      "       error: The option `x' does not exist. Definition values:",
      "       - In `f': true",
    ];
    assert.equal(nixErrorText(nix226Eval), "error: The option `x' does not exist. Definition values:\n       - In `f': true");
    assert.equal(nixErrorText(["a", "b"]), "a\nb");
    assert.equal(nixErrorText([]), "(nix printed nothing)");
  });
});

describe("copy-pasteable commands", () => {
  test("quotes only what bash would misread", () => {
    assert.equal(shellQuote("path:/a/b"), "path:/a/b");
    assert.equal(shellQuote("path:/a#toplevel"), "'path:/a#toplevel'");
    assert.equal(shellQuote("nix-command flakes"), "'nix-command flakes'");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote(""), "''");
    assert.equal(shellCommand(["nix", "build"], { NO_COLOR: "1" }), "NO_COLOR=1 nix build");
  });

  test("a whole closure on a command line is cut at the normal level, printed whole with -v and in a job log", () => {
    const paths = Array.from({ length: 2000 }, (_, i) => `/nix/store/${String(i).padStart(32, "a")}-p${i}`);
    const argv = ["nix-store", "--dump-db", ...paths];
    assert.equal(
      shortCommand(argv),
      `nix-store --dump-db ${paths.slice(0, 4).join(" ")} ... (and 1996 more store paths: -v prints the whole command)`,
    );
    assert.equal(shortCommand(argv.slice(0, 7)), shellCommand(argv.slice(0, 7)), "a few paths are printed as they are");
    const printed = (verbosity: Verbosity) => {
      const out: string[] = [];
      streamLogger({ write: (t: string) => out.push(t), isTTY: false }, { verbosity }).command(argv);
      return out.join("");
    };
    assert.equal(printed("normal"), `+ ${shortCommand(argv)}\n`);
    assert.equal(printed("verbose"), `+ ${shellCommand(argv)}\n`);
  });
});

describe("files and locks", () => {
  test("a cache file that is missing, garbled, not a file or not ours reads as no cache, and only ours is replaced", () => {
    const dir = mkdtempSync(join(tmpdir(), "cache-"));
    try {
      assert.equal(readCache(join(dir, "missing.json")), null);
      writeFileSync(join(dir, "garbled.json"), '{"key": "ab');
      assert.equal(readCache(join(dir, "garbled.json")), null);
      mkdirSync(join(dir, "dir.json"));
      assert.equal(readCache(join(dir, "dir.json")), null);
      // Not ours (no mark): neither read, nor replaced, nor removed.
      writeFileSync(join(dir, "foreign.json"), '{"key":"ab"}\n');
      assert.equal(readCache(join(dir, "foreign.json")), null);
      assert.equal(isOursOrFree(join(dir, "foreign.json")), false);
      assert.equal(writeCache(join(dir, "foreign.json"), { key: "cd" }), false);
      assert.equal(readFileSync(join(dir, "foreign.json"), "utf8"), '{"key":"ab"}\n');
      assert.equal(writeCache(join(dir, "good.json"), { key: "ab" }), true);
      assert.deepEqual(readCache(join(dir, "good.json")), { by: "nixos-closure", key: "ab" });
      assert.equal(isOursOrFree(join(dir, "good.json")), true);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("atomic writes skip unchanged content", () => {
    const dir = mkdtempSync(join(tmpdir(), "files-"));
    try {
      const f = join(dir, "a");
      assert.equal(readIfExists(f), null);
      assert.equal(writeFileAtomic(f, "x"), true);
      assert.equal(writeFileAtomic(f, "x"), false);
      assert.equal(writeFileAtomic(f, "y"), true);
      assert.equal(readIfExists(f), "y");
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

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

describe("did you mean", () => {
  test("suggests a close name, and none for a far one", () => {
    assert.equal(closestName("xfsprog", ["fio", "xfsprogs", "xfstests"]), "xfsprogs");
    assert.equal(closestName("DEVLE", ["devel", "build-tools"]), "devel");
    assert.equal(closestName("gaming", ["devel", "build-tools", "monitoring"]), null);
    assert.equal(didYouMean("vm_nmae", ["vm_name", "user_name"]), '; did you mean "vm_name"?');
    assert.equal(didYouMean("zzz", ["vm_name"]), "");
  });
});

describe("nix store diff-closures text", () => {
  test("version changes, additions, removals and size deltas", () => {
    const text = [
      "gcc: ∅ → 14.2, +51200.0 KiB",
      "fio: 3.36 → 3.37, -8.5 KiB",
      "kdevops-tools: 0.1 → ∅",
      "system-path: +12.0 KiB",
      "",
    ].join("\n");
    assert.deepEqual(parseDiffClosures(text), [
      { name: "gcc", from: [], to: ["14.2"], size_delta: 51200 * 1024 },
      { name: "fio", from: ["3.36"], to: ["3.37"], size_delta: -8704 },
      { name: "kdevops-tools", from: ["0.1"], to: [], size_delta: null },
      { name: "system-path", from: [], to: [], size_delta: 12288 },
    ]);
  });
  test("as text: a package built again is said once, as rebuilt; the rest as added or removed", () => {
    const path = (hash: string, name: string) => `/nix/store/${hash.repeat(32)}-${name}`;
    const lines = formatClosureDiff("/nix/store/old", "/nix/store/new", {
      added: [path("a", "system-path"), path("b", "gcc-14.2"), path("c", "nixos-system-vm1")],
      removed: [path("d", "system-path"), path("e", "nixos-system-vm1"), path("f", "kdevops-tools-0.1")],
      added_size: 3 * 1024 * 1024,
      removed_size: 1024,
      changes: [],
    });
    assert.deepEqual(lines.slice(2), [
      "  rebuilt: system-path, nixos-system-vm1",
      "  added: gcc-14.2",
      "  removed: kdevops-tools-0.1",
    ]);
  });
  test("Nix's colours are not part of the data", () => {
    const coloured = "gcc: \x1b[31;1m∅\x1b[0m → \x1b[32;1m14.2\x1b[0m, \x1b[31;1m+51200.0 KiB\x1b[0m";
    assert.deepEqual(parseDiffClosures(coloured), [{ name: "gcc", from: [], to: ["14.2"], size_delta: 51200 * 1024 }]);
  });
});

describe("store paths computed as Nix computes them", () => {
  test("a locked input's source path follows from its NAR hash (vectors from nix flake archive)", () => {
    assert.equal(
      sourcePathOf("sha256-k9bnbfYR3ptUofDyEPNDi38aj+m3i+pR6fjGyhtXwhk="),
      "/nix/store/n93l3xg157rfka9zpp9civ5mvibl7bcr-source",
    );
    assert.equal(
      sourcePathOf("sha256-ongl0IBjYlYrOOFqqJh5+M5w4tYMTFvqyaNWYsEjHZ8="),
      "/nix/store/nhsn4ajd8mxi5h0k4nl3sd4j2456gbi6-source",
    );
    assert.equal(sourcePathOf("sha1-deadbeef"), null);
  });
});
