// Every Nix under test as a user meets it: what of Nix's own output reaches
// the default screen of the command line, and the same figures from the same
// input on every version.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { cleanUpVms, diffSystems, listVms } from "../../f/nix/lib/steps/vms.ts";
import { TEST_NIX_CONFIG, testNixes } from "../helpers/nix.ts";
import { testContext, vmSteps, waitFor } from "../helpers/steps.ts";
import { createWorkbench, type Workbench } from "../helpers/workbench.ts";

const BIN = join(ROOT, "dist", "nixos-closure.cjs");
/** Nix's words the user never needs: its account of a lock, deprecations, a GC root read again. */
const NIX_CHATTER =
  /Added input|Updated input|creating lock file|updating lock file|deprecated|don't know how to build|is not valid|will be built/;

for (const nix of testNixes()) {
  const [, minor = "0"] = /\) 2\.(\d+)/.exec(nix.version) ?? [];
  describe(`Nix's output on the screen, with ${nix.version}`, () => {
    let wb: Workbench;
    let env: NodeJS.ProcessEnv;
    before(() => {
      wb = createWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
      const { WORKERS_DIR: _w, WORKER_INDEX: _i, WORKBENCH_DIR: _b, SYSTEM_DIR: _s, ...rest } = wb.env;
      env = { ...rest, XDG_STATE_HOME: join(wb.root, "state") };
    });
    after(() => wb.cleanup());
    const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
      const run = spawnSync(process.execPath, [BIN, ...args], {
        env: { ...env, ...extraEnv },
        encoding: "utf8",
        timeout: 300_000,
      });
      assert.equal(run.status, 0, `${args.join(" ")}: ${run.stderr}`);
      return run.stderr;
    };
    const nixLines = (stderr: string) => stderr.split("\n").filter((line) => !line.startsWith("+ "));

    test("lock: one line of ours at the default level; -v shows Nix's own account", () => {
      cli(["render", "--vm-name", "quiet-lock", "--profile", "none", "--test-suite", "none"]);
      const locked = cli(["lock", "--vm-name", "quiet-lock"]);
      assert.ok(nixLines(locked).includes("locked nixos-flake, nixpkgs (follows)"), locked);
      assert.doesNotMatch(locked, NIX_CHATTER);
      // The library as it is: nothing to say. The library changed: one line again.
      assert.doesNotMatch(cli(["lock", "--vm-name", "quiet-lock", "--update-lock"]), /updated|locked|Updated/);
      writeFileSync(join(wb.libraryDir, "changed"), `${Date.now()}`);
      const updated = cli(["lock", "--vm-name", "quiet-lock", "--update-lock"]);
      assert.ok(nixLines(updated).includes("updated nixos-flake"), updated);
      assert.doesNotMatch(updated, NIX_CHATTER);

      cli(["render", "--vm-name", "verbose-lock", "--profile", "none", "--test-suite", "none"]);
      const verbose = cli(["lock", "--vm-name", "verbose-lock", "-v"]);
      assert.match(verbose, /^warning: creating lock file /m);
      // Nix 2.19 and later list what they added; 2.8 says only that it created the file.
      if (Number(minor) >= 19) assert.match(verbose, /^• Added input 'nixos-flake':/m);
      assert.ok(nixLines(verbose).includes("locked nixos-flake, nixpkgs (follows)"), verbose);
    });

    test("a warning the user must act on still shows, in Nix's words", () => {
      const config = { NIX_CONFIG: `${TEST_NIX_CONFIG}\nnixos-closure-no-such-setting = 1` };
      cli(["render", "--vm-name", "warned", "--profile", "none", "--test-suite", "none"]);
      const locked = cli(["lock", "--vm-name", "warned"], config);
      assert.match(locked, /^warning: unknown setting 'nixos-closure-no-such-setting'/m);
      assert.doesNotMatch(locked, NIX_CHATTER);
    });

    test("build, diff, prepare-root, list, remove and gc: no deprecation notice, no Nix chatter at the default level", () => {
      const shown = [
        cli(["build", "--vm-name", "chatter", "--profile", "none", "--test-suite", "none"]),
        cli(["build", "--vm-name", "chatter", "--profile", "build-tools", "--test-suite", "none"]),
        cli(["diff", "chatter"]),
        cli(["prepare-root", "--vm-name", "chatter"]),
        cli(["list"]),
        cli(["remove", "chatter", "--dry-run"]),
        cli(["gc", "--older-than", "0d", "--dry-run"]),
      ];
      for (const stderr of shown) assert.doesNotMatch(stderr, NIX_CHATTER, stderr);
      // -v shows Nix's own words, but never a notice meant for this code.
      for (const args of [["list"], ["diff", "chatter"], ["prepare-root", "--vm-name", "chatter"]]) {
        const verbose = cli([...args, "-v"]);
        assert.doesNotMatch(verbose, /deprecated/, verbose);
      }
    });

    test("list while another build runs: its output, on disk but not yet valid, is no news", async () => {
      const marker = join(wb.root, "slow-out");
      const expression = join(wb.root, "slow.nix");
      writeFileSync(
        expression,
        `derivation { name = "slow-${process.pid}-${Date.now()}"; system = "x86_64-linux"; builder = "/bin/sh";
           args = [ "-c" "echo > $out; echo $out > ${marker}; exec /usr/bin/sleep 60" ]; }`,
      );
      let building: ChildProcess | undefined;
      try {
        building = spawn(
          join(nix.bin, "nix"),
          ["--extra-experimental-features", "nix-command", "build", "-f", expression, "--no-link"],
          {
            env: { ...process.env, NIX_CONFIG: TEST_NIX_CONFIG },
            stdio: "ignore",
          },
        );
        await waitFor(60_000, "the slow build's output", () => existsSync(marker));
        const output = readFileSync(marker, "utf8").trim();
        assert.ok(existsSync(output), output);
        // Nix names the path it could not read as it retries, and only -v shows what it said.
        assert.match(cli(["list", "-v"]), new RegExp(`path '${output}' is not valid`));
        const shown = cli(["list"]);
        assert.doesNotMatch(shown, NIX_CHATTER, shown);
        assert.ok(!nixLines(shown).some((line) => line.includes(output)), shown);
      } finally {
        building?.kill("SIGTERM");
        rmSync(marker, { force: true });
      }
    });
  });
}

describe("the same input gives the same figures on every Nix version", () => {
  let wb: Workbench;
  before(() => {
    wb = createWorkbench(testNixes()[0] ?? null);
  });
  after(() => wb.cleanup());

  test("closure report and diff, prepared root, list sizes and diff of two builds", async () => {
    const figures = [];
    // A package that grows between the two builds (a size change), and profiles added (version changes).
    const src = join(wb.root, "src", "fio");
    mkdirSync(src, { recursive: true });
    const overrides = [{ pkg: "fio", src }];
    for (const nix of testNixes()) {
      const options = { env: { NIX_BIN: nix.bin, NIXOS_CLOSURE_PROGRESS: "off" } };
      const steps = vmSteps(wb, options);
      const context = () => testContext(wb, "versions", options);
      writeFileSync(join(src, "data"), "a".repeat(16 * 1024));
      const first = await steps.renderLockBuild({
        vm_name: "same-figures",
        profiles: ["devel"],
        test_suites: ["fstests"],
        overrides,
      });
      writeFileSync(join(src, "data"), "b".repeat(160 * 1024));
      const second = await steps.renderLockBuild({
        vm_name: "same-figures",
        profiles: ["devel", "build-tools"],
        test_suites: ["fstests"],
        overrides,
      });
      const root = await steps.prepareRoot(second.config_dir);
      const listed = (await listVms(context())).find((vm) => vm.vm_name === "same-figures");
      const diff = await diffSystems(context(), "same-figures");
      figures.push({
        version: nix.version,
        toplevels: [first.toplevel, second.toplevel],
        firstClosure: first.closure,
        secondClosure: second.closure,
        root: {
          paths: root.paths,
          nar_size: root.nar_size,
          files: root.files_linked + root.files_copied,
          closures: root.closures,
        },
        listed: { state: listed?.state, toplevel: listed?.toplevel, closure_size: listed?.closure_size },
        diff: diff.diff,
      });
      // The next version starts from nothing, as this one did.
      await cleanUpVms(context(), { names: ["same-figures"] });
    }
    const [firstVersion, ...others] = figures;
    assert.ok(firstVersion);
    assert.ok(
      firstVersion.secondClosure.diff?.changes.some((change) => change.size_delta !== null),
      "a size to compare",
    );
    for (const other of others) assert.deepEqual({ ...other, version: "" }, { ...firstVersion, version: "" }, other.version);
  });
});
