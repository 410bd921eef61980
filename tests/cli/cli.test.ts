// nixos-closure as a user runs it: a process, flags or --input, exit codes,
// Ctrl-C.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { lockHolderOf } from "../../f/nix/lib/worker/dir_lock.ts";
import { ED25519 } from "../helpers/golden_cases.ts";
import { ownName, testNixes } from "../helpers/nix.ts";
import { waitFor, within } from "../helpers/steps.ts";
import { createWorkbench, snapshot, type Workbench } from "../helpers/workbench.ts";

const BIN = join(ROOT, "dist", "nixos-closure.cjs");

const [nix] = testNixes();
describe(`nixos-closure with ${nix?.version}`, () => {
  let wb: Workbench;
  let env: NodeJS.ProcessEnv;
  before(() => {
    assert.ok(nix);
    wb = createWorkbench(nix);
    // As a user outside Windmill: no worker slot, state under XDG_STATE_HOME.
    const { WORKERS_DIR: _w, WORKER_INDEX: _i, WORKBENCH_DIR: _b, SYSTEM_DIR: _s, ...rest } = wb.env;
    env = { ...rest, XDG_STATE_HOME: join(wb.root, "state") };
  });
  after(() => wb.cleanup());

  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv }, encoding: "utf8", timeout: 300_000 });

  test("--help on the program and on each command", () => {
    const top = cli(["--help"]);
    assert.equal(top.status, 0);
    for (const command of ["build", "render", "lock"]) assert.match(top.stdout, new RegExp(`^  ${command} `, "m"));
    for (const command of ["build", "render", "lock"]) {
      const help = cli([command, "--help"]);
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /--vm-name <name>/);
      assert.match(help.stdout, /--input <file\.json>/);
    }
  });

  test("build --json: the flow result as the last line of stdout, logs on stderr", () => {
    const run = cli([
      "build",
      "--vm-name",
      "cli-vm",
      "--profile",
      "devel",
      "--test-suite",
      "none",
      "--share",
      "/mnt/linux=linux:ro",
      "--ssh-key",
      ED25519,
      "--json",
    ]);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 1, "nothing but the result on stdout");
    const result = JSON.parse(lines[0] as string);
    const configDir = join(wb.root, "state", "nixos-closure", "workers", "0", "nix", "cli-vm");
    assert.equal(result.config_dir, configDir);
    for (const field of ["toplevel", "init", "initrd"]) assert.equal(typeof result[field], "string");
    assert.match(run.stderr, /\+ NO_COLOR=1 .*nix .* build 'path:.*cli-vm#toplevel'/);
    assert.match(
      readFileSync(join(configDir, "default.nix"), "utf8"),
      /nixos-flake\.shares\."\/mnt\/linux" = \{ tag = "linux"; options = \[ "ro" \]; \};/,
    );
  });

  test("--input holds a flow input; flags override its fields; steps also run one by one", () => {
    const input = join(wb.root, "input.json");
    writeFileSync(
      input,
      JSON.stringify({ guest: { vm_name: "from-file", home: false }, closure: { profiles: [], test_suites: [] } }),
    );
    const rendered = cli(["render", "--input", input, "--vm-name", "from-flag", "--json"]);
    assert.equal(rendered.status, 0, rendered.stderr);
    const configDir = JSON.parse(rendered.stdout).config_dir;
    assert.match(configDir, /\/from-flag$/);
    assert.doesNotMatch(readFileSync(join(configDir, "default.nix"), "utf8"), /imports = \[\n/);
    const locked = cli(["lock", "--vm-name", "from-flag", "--json"]);
    assert.equal(locked.status, 0, locked.stderr);
    assert.match(JSON.parse(locked.stdout).lock.nodes["nixos-flake"].locked.narHash, /^sha256-/);
    const built = cli(["build", "--only", "--config-dir", configDir, "--json"]);
    assert.equal(built.status, 0, built.stderr);
    assert.equal(JSON.parse(built.stdout).config_dir, configDir);
  });

  test("build --prepare-root adds a closure-only root; prepare-root runs it alone", () => {
    const run = cli(["build", "--vm-name", "root-cli", "--profile", "none", "--test-suite", "none", "--prepare-root", "--json"]);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    assert.equal(result.root_dir, join(result.config_dir, "root"));
    assert.equal(result.store_dir, join(result.config_dir, "root", "nix", "store"));
    assert.equal(typeof result.init, "string");
    const rootDir = join(wb.root, "served-root");
    const alone = cli(["prepare-root", "--vm-name", "root-cli", "--root-dir", rootDir, "--json"]);
    assert.equal(alone.status, 0, alone.stderr);
    assert.equal(JSON.parse(alone.stdout).root_dir, rootDir);
    assert.equal(JSON.parse(alone.stdout).toplevel, result.toplevel);
    // What only the step can find (a store path Nix has no record of) is named by its flag too, with exit 2.
    const unregistered = `/nix/store/${"0".repeat(31)}3-nixos-closure-cli-unregistered-${process.pid}`;
    mkdirSync(unregistered);
    try {
      const refused = cli(["prepare-root", "--vm-name", "root-cli", "--root-dir", rootDir, "--closure", unregistered]);
      assert.equal(refused.status, 2, refused.stderr);
      assert.match(refused.stderr, /bad input: --closure: ".*-unregistered-\d+" is in the store directory but is not a valid/);
    } finally {
      rmSync(unregistered, { recursive: true });
    }
    // The root's fields reach the step through the flow: an extra closure, a channel, a root built by Nix.
    const bash = readlinkSync(join(result.generation_dir, "bin", "sh"))
      .split("/")
      .slice(0, 4)
      .join("/");
    const nixBuilt = cli([
      "prepare-root",
      "--vm-name",
      "root-cli",
      "--closure",
      bash,
      "--channel",
      bash,
      "--nix-build",
      "--json",
    ]);
    assert.equal(nixBuilt.status, 0, nixBuilt.stderr);
    const built = JSON.parse(nixBuilt.stdout);
    assert.equal(built.nix_build, true);
    assert.match(built.generation_dir, /^\/nix\/store\/[a-z0-9]{32}-nixos-closure-root$/);
    assert.deepEqual(
      built.closures.map((c: { field: string; added: number }) => [c.field, c.added]),
      [
        ["toplevel", built.paths],
        ["closures[0]", 0],
        ["channel", 0],
      ],
    );
    assert.ok(existsSync(join(built.generation_dir, "nix-path-registration")));
  });

  test("exit 2 on bad input, naming the input; nothing written", () => {
    const bad = cli(["build", "--vm-name", "bad-input", "--profile", "gaming"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /error: bad input: --profile: "gaming" is not one of: build-tools, controller, devel, monitoring\n/);
    assert.equal(bad.stdout, "");
    const share = cli(["render", "--share", "/mnt/x"]);
    assert.equal(share.status, 2);
    assert.match(share.stderr, /--share: "\/mnt\/x" must look like MOUNT=TAG/);
    const unknown = cli(["build", "--bogus"]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown option '--bogus'/);
    const file = join(wb.root, "not-json.json");
    writeFileSync(file, "{");
    assert.equal(cli(["render", "--input", file]).status, 2);
  });

  test("Ctrl-C stops the build, keeps the previous result, and exits 130", async () => {
    const src = join(wb.root, "src", "slow-xfsprogs");
    mkdirSync(src, { recursive: true });
    // A source of this run's own: another run building the same slow derivation would make this one wait for its lock.
    writeFileSync(join(src, "salt"), `${process.pid}-${Date.now()}`);
    const input = (preBuild: string) => {
      const file = join(wb.root, `slow-${preBuild === "" ? "fast" : "slow"}.json`);
      const override = { pkg: "xfsprogs", src, ...(preBuild === "" ? {} : { attrs: { preBuild } }) };
      writeFileSync(
        file,
        JSON.stringify({
          guest: { vm_name: "ctrl-c" },
          closure: { profiles: [], test_suites: ["fstests"], overrides: [override] },
        }),
      );
      return file;
    };
    const good = cli(["build", "--input", input(""), "--json"]);
    assert.equal(good.status, 0, good.stderr);
    const toplevel = JSON.parse(good.stdout).toplevel;
    const child = spawn(process.execPath, [BIN, "build", "--input", input("sleep 60"), "--no-progress"], { env });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    await waitFor(
      60_000,
      "the slow build to start",
      () => /building '.*xfsprogs-6\.13\.0\.drv'/.test(stderr),
      () => child.kill("SIGKILL"),
    );
    child.kill("SIGINT");
    assert.equal(await within(10_000, "the CLI to exit", exited, () => child.kill("SIGKILL")), 130, stderr);
    assert.match(stderr, /error: interrupted by SIGINT/);
    assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
    const configDir = JSON.parse(good.stdout).config_dir;
    assert.equal(readlinkSync(join(configDir, "result")), toplevel);
    assert.equal(await lockHolderOf(configDir, env), null, "the CLI released the config dir's lock");
  });

  test("the whole input is checked before anything is written: a bad nix or root field changes no file", () => {
    const first = cli(["render", "--vm-name", "checked-vm", "--profile", "none", "--test-suite", "none"]);
    assert.equal(first.status, 0, first.stderr);
    const stateDir = join(wb.root, "state");
    const before = snapshot(stateDir);
    const notExport = join(wb.root, "not-an-export");
    writeFileSync(notExport, "a text file\n");
    const inputs: [object, RegExp][] = [
      [{ nix: { options: { "--foo": "1" } } }, /nix\.options: "--foo" is not a Nix setting name/],
      [{ nix: { options: { "post-build-hook": "/tmp/x.sh" } } }, /"post-build-hook" is not a setting the flow input may set/],
      [{ nix: { options: { fallback: "x".repeat(100_000) } } }, /at most 16384 are accepted/],
      [{ nix: { publish_to: ["local?root=%"] } }, /malformed %-escape/],
      [{ root: { prepare: true, dir: 5 } }, /root\.dir: 5 must be a string/],
      [{ root: { prepare: true, dir: {} } }, /root\.dir: \{\} must be a string/],
      [{ root: { prepare: true, dir: [] } }, /root\.dir: \[\] must be a string/],
      [{ root: { prepare: "yes" } }, /root\.prepare: "yes" must be true or false/],
      [{ root: { prepare: true, closures: ["/tmp/x"] } }, /root\.closures\[0\]: "\/tmp\/x" must be a store path/],
      [
        { root: { prepare: true, closure_files: [notExport] } },
        /root\.closure_files\[0\]: ".*not-an-export" is not a file written by nix-store --export/,
      ],
      [{ root: { prepare: true, channel: "nixos" } }, /root\.channel: "nixos" must be a store path/],
      [{ root: { prepare: true, nix_build: "true" } }, /root\.nix_build: "true" must be true or false/],
    ];
    for (const [extra, message] of inputs) {
      const file = join(wb.root, "checked.json");
      writeFileSync(file, JSON.stringify({ guest: { vm_name: "checked-vm" }, closure: { profiles: ["devel"] }, ...extra }));
      const run = cli(["build", "--input", file]);
      assert.equal(run.status, 2, `${JSON.stringify(extra).slice(0, 80)}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
      assert.deepEqual(snapshot(stateDir), before, "nothing was written");
    }
    // A flag is named as typed.
    const file = cli(["prepare-root", "--vm-name", "checked-vm", "--closure-file", notExport]);
    assert.equal(file.status, 2, file.stderr);
    assert.match(file.stderr, /--closure-file: ".*not-an-export" is not a file written by nix-store --export/);
    assert.deepEqual(snapshot(stateDir), before, "nothing was written");
  });

  test("a Nix setting that would run a program is refused: the program never runs", () => {
    const marker = join(wb.root, "hook-ran");
    const hook = join(wb.root, "hook.sh");
    writeFileSync(hook, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const run = cli([
      "build",
      "--vm-name",
      "hook-vm",
      "--profile",
      "none",
      "--test-suite",
      "none",
      "--option",
      `post-build-hook=${hook}`,
    ]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /"post-build-hook" is not a setting the flow input may set/);
    assert.equal(existsSync(marker), false);
    // A store URI parameter that names a program: refused too, before Nix sees it.
    const viaUri = cli([
      "build",
      "--vm-name",
      "hook-vm",
      "--profile",
      "none",
      "--test-suite",
      "none",
      "--publish-to",
      `ssh-ng://localhost?remote-program=${encodeURIComponent(`sh -c 'touch ${marker}'`)}`,
    ]);
    assert.equal(viaUri.status, 2, viaUri.stderr);
    assert.match(viaUri.stderr, /parameter "remote-program", which the flow input may not set/);
    assert.equal(existsSync(marker), false);
  });

  test("files that are not key or input files are refused at once, unread", () => {
    for (const args of [
      ["render", "--ssh-key-file", "/dev/zero"],
      ["render", "--input", "/dev/zero"],
      ["render", "--ssh-key-file", wb.root],
    ]) {
      const started = Date.now();
      const run = cli(args);
      assert.equal(run.status, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, /is not a regular file/);
      assert.ok(Date.now() - started < 10_000, `${args.join(" ")} took ${Date.now() - started} ms`);
    }
  });

  test("errors speak the caller's words: flags, the --input file, the CLI's commands", () => {
    const typo = cli(["render", "--vm-name", "words-vm", "--profile", "devle"]);
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, /^error: bad input: --profile: "devle" is not one of: .*; did you mean "devel"\?$/m);

    const file = join(wb.root, "words.json");
    writeFileSync(file, JSON.stringify({ guest: { vm_nmae: "x" } }));
    const field = cli(["render", "--input", file]);
    assert.equal(field.status, 2);
    assert.match(
      field.stderr,
      /--input .*words\.json: guest: "vm_nmae" is not a field of the guest group .*did you mean "vm_name"\?/,
    );
    writeFileSync(file, JSON.stringify({ closure: { profiles: ["devle"] } }));
    assert.match(cli(["render", "--input", file]).stderr, /--input .*words\.json: closure\.profiles\[0\]: "devle"/);
    writeFileSync(file, JSON.stringify({ lock: { update_lock: "no" } }));
    assert.match(cli(["render", "--input", file]).stderr, /lock\.update_lock: "no" must be true or false/);

    const library = cli(["render", "--nixos-flake", join(wb.root, "no-library")]);
    assert.equal(library.status, 2);
    assert.match(library.stderr, /--nixos-flake: ".*no-library" is not the nixos-flake library/);

    const never = cli(["build", "--only", "--vm-name", "never-rendered"]);
    assert.equal(never.status, 2, "a VM never rendered is a wrong name");
    assert.match(
      never.stderr,
      /--vm-name: "never-rendered" is not a VM of this worker \(no config dir at .*\): run nixos-closure render first/,
    );
    assert.equal(cli(["render", "--vm-name", "never-built", "--profile", "none", "--test-suite", "none"]).status, 0);
    const unbuilt = cli(["prepare-root", "--vm-name", "never-built"]);
    assert.equal(unbuilt.status, 1);
    assert.match(unbuilt.stderr, /has no build yet \(no result link\): run nixos-closure build first/);

    const key = cli(["render", "--ssh-key-file", join(wb.root, "id_ed25519.pub")]);
    assert.equal(key.status, 2);
    assert.match(key.stderr, /--ssh-key-file: .* no such file or directory .*ssh-keygen -t ed25519/);
  });

  test("an override typo or an override nothing uses is exit 2 naming --override; --optional-override may reach nothing", () => {
    const src = join(wb.root, "src-cli-override");
    mkdirSync(src, { recursive: true });
    const typo = cli([
      "build",
      "--vm-name",
      "typo-cli",
      "--profile",
      "none",
      "--test-suite",
      "fstests",
      "--override",
      `xfsprog=${src}`,
    ]);
    assert.equal(typo.status, 2, typo.stderr);
    assert.match(
      typo.stderr,
      /error: bad input: --override: "xfsprog" is not a package of this nixpkgs; did you mean "xfsprogs"\?/,
    );
    const unused = cli([
      "build",
      "--vm-name",
      "unused-cli",
      "--profile",
      "none",
      "--test-suite",
      "ltp",
      "--override",
      `fio=${src}`,
    ]);
    assert.equal(unused.status, 2, unused.stderr);
    assert.match(unused.stderr, /--override: "fio" is a package nothing in this VM uses/);
    const optional = cli([
      "build",
      "--vm-name",
      "unused-cli",
      "--profile",
      "none",
      "--test-suite",
      "ltp",
      "--optional-override",
      `fio=${src}`,
      "--json",
    ]);
    assert.equal(optional.status, 0, optional.stderr);
    assert.deepEqual(
      JSON.parse(optional.stdout).overrides.map((o: { pkg: string; built: string[] }) => [o.pkg, o.built]),
      [["fio", []]],
    );
    const only = cli(["build", "--only", "--vm-name", "unused-cli", "--optional-override", `fio=${src}`, "--json"]);
    assert.equal(only.status, 0, only.stderr);
  });

  test("plan with root.prepare in the input plans, and prepares nothing", () => {
    const file = join(wb.root, "plan-root.json");
    writeFileSync(
      file,
      JSON.stringify({ guest: { vm_name: "plan-root" }, closure: { profiles: [], test_suites: [] }, root: { prepare: true } }),
    );
    const run = cli(["plan", "--input", file, "--json"]);
    assert.equal(run.status, 0, run.stderr);
    assert.ok(Array.isArray(JSON.parse(run.stdout).plan.derivations));
    const configDir = join(wb.root, "state", "nixos-closure", "workers", "0", "nix", "plan-root");
    assert.equal(existsSync(join(configDir, "root")), false);
    assert.equal(existsSync(`${configDir}.roots`), false);
  });

  test("two runs of one VM at once: each builds the system it asked for", async () => {
    const run = (user: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [BIN, "build", "--vm-name", "par", "--profile", "none", "--test-suite", "none", "--no-home", "--user", user, "--json"],
          { env },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("close", (code) => resolve({ code, stdout, stderr }));
      });
    for (let round = 0; round < 3; round++) {
      const [a, b] = await within(120_000, "both runs", Promise.all([run("usera"), run("userb")]));
      for (const [r, user] of [
        [a, "usera"],
        [b, "userb"],
      ] as const) {
        assert.equal(r.code, 0, r.stderr);
        const users = JSON.parse(readFileSync(join(JSON.parse(r.stdout).toplevel, "etc", "evaluated.json"), "utf8")).users;
        assert.ok(user in users, `the run for ${user} built a system with ${Object.keys(users).join(", ")}`);
      }
    }
  });

  test("a bad root is refused before anything is built; input from a FIFO is refused unread", async () => {
    const run = cli([
      "build",
      "--vm-name",
      "early-root",
      "--profile",
      "none",
      "--test-suite",
      "none",
      "--prepare-root",
      "--root-dir",
      "/nix/store/x",
    ]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /--root-dir: "\/nix\/store\/x" must not be inside \/nix\/store/);
    assert.equal(existsSync(join(wb.root, "state", "nixos-closure", "workers", "0", "nix", "early-root")), false);
    const fifo = join(wb.root, "input.fifo");
    execFileSync("mkfifo", [fifo]);
    for (const flag of ["--input", "--ssh-key-file"]) {
      const started = Date.now();
      const fromFifo = await within(20_000, `${flag} from a FIFO`, Promise.resolve(cli(["render", flag, fifo])));
      assert.equal(fromFifo.status, 2, fromFifo.stderr);
      assert.match(fromFifo.stderr, /is not a regular file/);
      assert.ok(Date.now() - started < 15_000);
    }
  });

  test("several --vm-name: every input checked first, one evaluation per distinct system, a table, the highest exit code", () => {
    const nixDir = join(wb.root, "state", "nixos-closure", "workers", "0", "nix");
    const common = ["--no-home", "--profile", "none", "--test-suite", "fstests"];
    const bad = cli(["build", "--hostname-at-boot", "--vm-name", "many-ok", "--vm-name", "many-bad-", ...common]);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /--vm-name: "many-bad-" is not a valid NixOS host name/);
    assert.equal(existsSync(join(nixDir, "many-ok")), false, "a VM was written before every input was checked");

    // One VM whose lock cannot be taken fails; the others go on.
    mkdirSync(nixDir, { recursive: true });
    symlinkSync("/dev/null", join(nixDir, "many-c.lock"));
    const names = ["many-a", "many-b", "many-c", "many-a"].flatMap((vm) => ["--vm-name", vm]);
    const run = cli(["build", "--hostname-at-boot", ...names, ...common]);
    assert.equal(run.status, 1, run.stderr);
    const table = run.stdout.trim().split("\n");
    assert.match(table[0] ?? "", /^VM\s+system\s+evaluation\s+time\s+kernel_params$/);
    assert.match(table[1] ?? "", /^many-a\s+\S+-nixos-system-unnamed-\S+\s+evaluated\s+\d+\.\d s\s+systemd\.hostname=many-a$/);
    assert.match(
      table[2] ?? "",
      /^many-b\s+\S+-nixos-system-unnamed-\S+\s+shared \(many-a\)\s+\d+\.\d s\s+systemd\.hostname=many-b$/,
    );
    assert.match(table[3] ?? "", /^many-c\s+-\s+failed \(exit 1\)\s+\d+\.\d s\s+-$/);
    assert.equal(table.length, 4, "a name given twice is built once");
    assert.match(run.stderr, /error: many-c: .*many-c\.lock is a symbolic link/);
    rmSync(join(nixDir, "many-c.lock"));

    const json = cli(["build", "--hostname-at-boot", "--vm-name", "many-a", "--vm-name", "many-c", ...common, "--json"]);
    assert.equal(json.status, 0, json.stderr);
    const rows = JSON.parse(json.stdout.trim().split("\n").at(-1) ?? "[]");
    assert.deepEqual(
      rows.map((r: { vm_name: string; exit_code: number; result: { evaluated: boolean; kernel_params: string[] } }) => [
        r.vm_name,
        r.exit_code,
        r.result.evaluated,
        r.result.kernel_params,
      ]),
      [
        ["many-a", 0, false, ["systemd.hostname=many-a"]],
        ["many-c", 0, false, ["systemd.hostname=many-c"]],
      ],
    );
  });

  test("list, diff, remove and gc as a user runs them", () => {
    for (const profile of ["devel", "build-tools"]) {
      const run = cli(["build", "--vm-name", "house", "--profile", profile, "--test-suite", "none", "--no-home"]);
      assert.equal(run.status, 0, run.stderr);
    }
    const list = cli(["list"]);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^VM\s+worker\s+state\s+built\s+closure\s+only its own\s+toplevel$/m);
    assert.match(
      list.stdout,
      /^house\s+0\s+built\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+[\d.]+ \S+\s+[\d.]+ \S+\s+\/nix\/store\/\S+-nixos-system-house-/m,
    );
    const diff = cli(["diff", "house"]);
    assert.equal(diff.status, 0, diff.stderr);
    assert.match(diff.stdout, /^to {3}\/nix\/store\/\S+: \d+ paths? added \(.+\), \d+ paths? removed \(.+\)$/m);
    assert.match(diff.stdout, /^ {2}gcc: added 14\.2/m);
    const unknown = cli(["remove", "nosuchvm"]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /not a VM of this worker/);
    // What an unset variable in a script gives: refused, never 0 or the default VM.
    const emptyKeep = cli(["gc", "--older-than", "0d", "--keep", ""]);
    assert.equal(emptyKeep.status, 2, emptyKeep.stderr);
    assert.match(emptyKeep.stderr, /^error: bad input: --keep: "" must be a whole number >= 0/m);
    const emptyName = cli(["remove", "house", ""]);
    assert.equal(emptyName.status, 2, emptyName.stderr);
    assert.match(emptyName.stderr, /^error: bad input: VM: "" is not a VM name/m);
    assert.match(cli(["list"]).stdout, /^house /m, "nothing was removed");
    const removed = cli(["remove", "house"]);
    assert.equal(removed.status, 0, removed.stderr);
    assert.match(removed.stdout, /^removed house: the next nix-store --gc can free [\d.]+ \S+$/m);
    assert.doesNotMatch(cli(["list"]).stdout, /^house /m);
    const gc = cli(["gc", "--older-than", "bad"]);
    assert.equal(gc.status, 2);
    assert.match(gc.stderr, /--older-than: "bad" must be an age such as 30d or 12h/);
  });

  test("a worker reached through links (HOME, WORKERS_DIR): each step takes its VM's one lock; list counts what only it keeps", () => {
    for (const [vm, variable] of [
      // Names of this run's own: another run's build of the same system would hold its bytes too.
      [ownName("linked-home"), "HOME"],
      [ownName("linked-workers"), "WORKERS_DIR"],
    ] as const) {
      const real = join(wb.root, `real-${variable}`);
      mkdirSync(real);
      symlinkSync(real, join(wb.root, `link-${variable}`));
      // A run waiting on its own lock would give up after a second, not a minute.
      const extra = { XDG_STATE_HOME: "", NIXOS_CLOSURE_LOCK_WAIT: "1", [variable]: join(wb.root, `link-${variable}`) };
      const steps = [
        ["build", "--vm-name", vm, "--profile", "none", "--test-suite", "none", "--no-home"],
        ["lock", "--vm-name", vm],
        ["build", "--only", "--vm-name", vm],
        ["prepare-root", "--vm-name", vm],
      ];
      let configDir = "";
      for (const args of steps) {
        const run = cli([...args, "--json"], extra);
        assert.equal(run.status, 0, `${args.join(" ")} with ${variable} a link: ${run.stderr}`);
        configDir = JSON.parse(run.stdout).config_dir;
        assert.ok(configDir.startsWith(`${real}/`), `${configDir} is named by its real path`);
      }
      const viaLink = join(wb.root, `link-${variable}`, relative(real, configDir));
      const only = cli(["build", "--only", "--config-dir", viaLink], extra);
      assert.equal(only.status, 0, `build --only --config-dir through the link: ${only.stderr}`);
      const list = cli(["list", "--json"], extra);
      assert.equal(list.status, 0, list.stderr);
      const [listed] = JSON.parse(list.stdout);
      assert.equal(listed.config_dir, configDir);
      assert.deepEqual(listed.gc_roots, [join(configDir, "result")]);
      assert.ok(listed.unique_size > 0, `its own system counts as its own: ${list.stdout}`);
    }
  });

  test("exit 1 when Nix fails or is missing, with Nix's words or where it looked", () => {
    const empty = join(wb.root, "empty-bin");
    mkdirSync(empty, { recursive: true });
    const noNix = cli(["build", "--vm-name", "no-nix"], { NIX_BIN: empty, PATH: empty });
    assert.equal(noNix.status, 1);
    assert.match(noNix.stderr, /error: NIX_BIN=.*empty-bin holds no nix/);
    assert.doesNotMatch(noNix.stderr, /\n\s+at /, "no stack trace");
  });

  test("the default library out of reach (offline): Nix's error once, then where else a library comes from", () => {
    const { NIXOS_FLAKE_DIR: _library, ...rest } = env;
    const offline = spawnSync(process.execPath, [BIN, "render", "--vm-name", "offline-vm"], {
      env: {
        ...rest,
        VENDOR_DIR: join(wb.root, "no-vendor"),
        // No network: every download goes to a proxy that is not there, at once.
        https_proxy: "http://127.0.0.1:9",
        all_proxy: "http://127.0.0.1:9",
        NIX_CONFIG: `${rest.NIX_CONFIG}\ndownload-attempts = 1`,
      },
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(offline.status, 1, offline.stderr);
    assert.equal(offline.stderr.match(/^\s*error: unable to download/gm)?.length, 1, offline.stderr);
    assert.match(
      offline.stderr,
      /\nno library was given and none is at .*no-vendor\/nixos-flake: give a checkout with --nixos-flake DIR, or put one there \(\$VENDOR_DIR\/nixos-flake\); `nixos-closure demo` shows the whole flow offline/,
    );
  });
});
