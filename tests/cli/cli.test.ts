// nixos-closure as a user runs it: a process, flags or --input, exit codes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { flowInputFromFlags, parseOverride, parseShare } from "../../cli/flow_input.ts";
import { InputError } from "../../f/nix/errors.ts";
import { ED25519 } from "../helpers/golden_cases.ts";
import { testNixes } from "../helpers/nix.ts";
import { createWorkbench, type Workbench } from "../helpers/workbench.ts";

const BIN = join(ROOT, "bin", "nixos-closure.js");

describe("flags mirror the flow input", () => {
  test("--share and --override syntax", () => {
    assert.deepEqual(parseShare("/mnt/linux=linux:ro,noatime"), ["/mnt/linux", { tag: "linux", options: ["ro", "noatime"] }]);
    assert.deepEqual(parseShare("/mnt/x=x"), ["/mnt/x", { tag: "x", options: [] }]);
    assert.throws(
      () => parseShare("/mnt/x"),
      (e: Error) => e instanceof InputError && /--share: "\/mnt\/x" must look like MOUNT=TAG/.test(e.message),
    );
    assert.deepEqual(parseOverride("fio=/src/fio"), { pkg: "fio", src: "/src/fio" });
    assert.deepEqual(parseOverride("kmod=https://example.org/kmod.git#v33"), {
      pkg: "kmod",
      src: "https://example.org/kmod.git",
      ref: "v33",
    });
    assert.deepEqual(parseOverride("fio=/src/a#b"), { pkg: "fio", src: "/src/a#b" });
    assert.throws(() => parseOverride("fio"), /PKG=SRC/);
  });

  test("flags fill the groups; curated overrides and others are split; 'none' is the empty list", () => {
    assert.deepEqual(
      flowInputFromFlags({
        vmName: "v",
        profile: ["none"],
        testSuite: ["ltp"],
        override: ["fio=/s", "kmod=/k"],
        updateLock: true,
        home: false,
      }),
      {
        guest: { vm_name: "v", home: false },
        closure: {
          profiles: [],
          test_suites: ["ltp"],
          overrides: [{ pkg: "fio", src: "/s" }],
          extra_overrides: [{ pkg: "kmod", src: "/k" }],
        },
        lock: { update_lock: true },
        root: {},
        nix: {},
      },
    );
    assert.deepEqual(
      flowInputFromFlags({
        builders: "ssh://b x86_64-linux",
        option: ["connect-timeout=5", "fallback=true"],
        publishTo: ["file:///c"],
        maxJobs: "4",
      }).nix,
      {
        builders: "ssh://b x86_64-linux",
        options: { "connect-timeout": "5", fallback: "true" },
        publish_to: ["file:///c"],
        max_jobs: "4",
      },
    );
  });
});

const [nix] = testNixes();
describe(`nixos-closure with ${nix?.version}`, () => {
  let wb: Workbench;
  let env: NodeJS.ProcessEnv;
  before(() => {
    assert.ok(nix);
    wb = createWorkbench(nix);
    // As a user outside Windmill: no WORKERS_DIR, state under XDG_STATE_HOME.
    const { WORKERS_DIR: _w, WORKER_INDEX: _i, ...rest } = { ...process.env, ...wb.env };
    env = { ...rest, XDG_STATE_HOME: join(wb.root, "state") };
  });
  after(() => wb.cleanup());

  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv }, encoding: "utf8" });

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
    assert.ok(JSON.parse(locked.stdout).lock.nodes["nixos-flake"]);
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
  });

  test("exit 2 on bad input, naming the input; nothing written", () => {
    const bad = cli(["build", "--vm-name", "bad-input", "--profile", "gaming"]);
    assert.equal(bad.status, 2);
    assert.match(
      bad.stderr,
      /error: bad input: profiles\[0\]: "gaming" is not one of: build-tools, controller, devel, monitoring/,
    );
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

  test("exit 1 when Nix fails or is missing, with Nix's words or where it looked", () => {
    const empty = join(wb.root, "empty-bin");
    mkdirSync(empty, { recursive: true });
    const noNix = cli(["build", "--vm-name", "no-nix"], { NIX_BIN: empty, PATH: empty });
    assert.equal(noNix.status, 1);
    assert.match(noNix.stderr, /error: nix was not found: looked in NIX_BIN/);
    assert.doesNotMatch(noNix.stderr, /\n\s+at /, "no stack trace");
  });
});
