// nixos-closure at a terminal, as a person sees it: run in a real
// pseudo-terminal whose output drives a terminal emulator, so the assertions
// are on the screen after every redraw (a resize included), with the real Nix.
import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { ED25519 } from "../helpers/golden_cases.ts";
import { testNixes } from "../helpers/nix.ts";
import { waitFor, within } from "../helpers/steps.ts";
import { runInTerminal, type TerminalRun } from "../helpers/terminal.ts";
import { createWorkbench, type Workbench } from "../helpers/workbench.ts";

const BIN = join(ROOT, "dist", "nixos-closure.cjs");

/** The status line of the live block, and a running build's line: `  00:03  xfsprogs-6.13.0  ...`. */
const STATUS = /^\[\d\d:\d\d\] (evaluating|building|fetching|finishing)/;
const RUNNING = /^ {2}\d\d:\d\d {2}\S/;

for (const nix of testNixes()) {
  describe(`a terminal, with ${nix.version}`, () => {
    let wb: Workbench;
    let env: NodeJS.ProcessEnv;
    let src: string;
    before(() => {
      wb = createWorkbench(nix);
      const { WORKERS_DIR: _w, WORKER_INDEX: _i, WORKBENCH_DIR: _b, SYSTEM_DIR: _s, ...rest } = wb.env;
      env = { ...rest, XDG_STATE_HOME: join(wb.root, "state"), TERM: "xterm-256color", NO_COLOR: "" };
      src = join(wb.root, "src", "xfsprogs");
      mkdirSync(src, { recursive: true });
    });
    after(() => wb.cleanup());

    /** An input whose xfsprogs builds for a few seconds, printing a numbered line every 0.3 s. */
    const slowInput = (vmName: string, lines: number) => {
      writeFileSync(join(src, "salt"), `${vmName}-${process.pid}-${Date.now()}`);
      const file = join(wb.root, `${vmName}.json`);
      const preBuild = `for i in $(seq ${lines}); do echo "compiling part $i of xfsprogs"; sleep 0.3; done`;
      writeFileSync(
        file,
        JSON.stringify({
          guest: { vm_name: vmName, ssh_keys: [ED25519] },
          closure: { profiles: [], test_suites: ["fstests"], overrides: [{ pkg: "xfsprogs", src, attrs: { preBuild } }] },
        }),
      );
      return file;
    };

    const run = (args: string[], options: { columns?: number; rows?: number; env?: NodeJS.ProcessEnv } = {}) =>
      runInTerminal([process.execPath, BIN, ...args], {
        env: { ...env, ...options.env },
        columns: options.columns ?? 100,
        rows: options.rows ?? 40,
      });

    const finished = async (terminal: TerminalRun) => {
      const code = await within(300_000, "the CLI to exit", terminal.exited, () => terminal.kill("SIGKILL"));
      assert.equal(code, 0, terminal.screen().join("\n"));
      return terminal.screen();
    };

    test("a build shows each running build with its time and latest line; a resize redraws cleanly; one summary stays", async () => {
      const terminal = run(["build", "--input", slowInput("live", 12)]);
      await waitFor(
        120_000,
        "xfsprogs to build",
        () => terminal.visible().some((line) => /compiling part [3-9]/.test(line)),
        () => terminal.kill("SIGKILL"),
      );
      const during = terminal.visible().filter((line) => line.trim() !== "");
      const running = during.find((line) => RUNNING.test(line)) ?? "";
      assert.match(running, /^ {2}00:0\d {2}xfsprogs-6\.13\.0 +compiling part \d+ of xfsprogs$/, during.join("\n"));
      assert.match(during.at(-1) ?? "", /^\[00:\d\d\] building: \d+\/\d+ built$/, during.join("\n"));

      await terminal.resize(40, 40);
      // The live block (its running builds and status line, last on the screen) redrawn at the new width.
      const liveBlock = () => {
        const narrow = terminal.visible().filter((line) => line.trim() !== "");
        return narrow.slice(narrow.findLastIndex((line) => !RUNNING.test(line) && !STATUS.test(line)) + 1);
      };
      await waitFor(
        30_000,
        "the block redrawn at 40 columns",
        () => liveBlock().length >= 1 && liveBlock().every((line) => line.length < 40),
        () => terminal.kill("SIGKILL"),
      );

      const screen = await finished(terminal);
      // Nothing of the live block is left: no status line, no running build, no fragment of either.
      assert.deepEqual(
        screen.filter((line) => STATUS.test(line) || RUNNING.test(line) || /^\d\d\] |^ *\d\d:\d\d {2}xfs/.test(line)),
        [],
        screen.join("\n"),
      );
      assert.equal(screen.filter((line) => /^built \d+ derivations in \d+\.\d s$/.test(line)).length, 1, screen.join("\n"));
      assert.match(screen.at(-1) ?? "", /^time +evaluation \d+\.\d s, build \d+\.\d s, total \d+\.\d s$/);
    });

    test("-L streams every builder line with its package's name, once; a no-op rebuild then fits on one screen", async () => {
      const input = slowInput("logs", 5);
      const screen = await finished(run(["build", "--input", input, "-L"]));
      const logLines = screen.filter((line) => line.startsWith("xfsprogs-6.13.0> "));
      assert.deepEqual(
        logLines,
        [1, 2, 3, 4, 5].map((i) => `xfsprogs-6.13.0> compiling part ${i} of xfsprogs`),
        screen.join("\n"),
      );

      const noOp = run(["build", "--input", input]);
      const again = await finished(noOp);
      assert.ok(noOp.rows().length <= 25, `${noOp.rows().length} rows:\n${noOp.rows().join("\n")}`);
      assert.match(again.join("\n"), /inputs unchanged since .* UTC: evaluation skipped/);
      assert.match(again.at(-1) ?? "", /^time /);
      assert.doesNotMatch(again.join("\n"), /----- .*flake\.nix -----/, "rendered files are -v's");
    });

    test("-v adds the rendered files and Nix's words; -q shows only the result", async () => {
      const input = slowInput("levels", 1);
      const verbose = (await finished(run(["build", "--input", input, "-v"]))).join("\n");
      assert.match(verbose, /----- .*\/levels\/flake\.nix -----/);
      assert.match(verbose, /----- end of .*\/levels\/default\.nix -----/);
      assert.match(verbose, /^building '\/nix\/store\/\S+-xfsprogs-6\.13\.0\.drv'/m);
      assert.match(verbose, /^using \/\S+\/nix$/m);

      const quiet = await finished(run(["build", "--input", input, "-q"]));
      assert.deepEqual(
        quiet.map((line) => line.split(/\s+/)[0]),
        ["config_dir", "toplevel", "init", "initrd", "boot_json", "time"],
        quiet.join("\n"),
      );
    });

    test("TERM=dumb and a pipe get plain lines: no escape at all", async () => {
      const terminal = run(["build", "--input", slowInput("dumb", 4)], { env: { TERM: "dumb" } });
      const screen = await finished(terminal);
      assert.ok(!terminal.raw.includes("\x1b"), JSON.stringify(terminal.raw));
      assert.ok(
        screen.some((line) => STATUS.test(line)),
        screen.join("\n"),
      );
    });

    test("--show-trace keeps Nix's evaluation trace; without it, the error is short", async () => {
      const first = await finished(run(["build", "--vm-name", "traced", "--profile", "none", "--test-suite", "none"]));
      const configDir = (first.find((line) => line.startsWith("config_dir")) ?? "").split(/\s+/)[1] as string;
      appendFileSync(join(configDir, "default.nix"), "// { nixos-flake.monitoring.enable = true; }\n");
      const short = run(["build", "--only", "--config-dir", configDir]);
      assert.equal(await within(120_000, "the build", short.exited, () => short.kill("SIGKILL")), 1);
      const traced = run(["build", "--only", "--config-dir", configDir, "--show-trace"]);
      assert.equal(await within(120_000, "the build", traced.exited, () => traced.kill("SIGKILL")), 1);
      const shortText = short.screen().join("\n");
      const tracedText = traced.screen().join("\n");
      assert.match(shortText, /The option `nixos-flake\.monitoring\.enable' does not exist/);
      assert.match(tracedText, /The option `nixos-flake\.monitoring\.enable' does not exist/);
      assert.match(tracedText, /--show-trace/, "the flag reached Nix's command line");
      assert.match(tracedText, /… while /);
      assert.doesNotMatch(shortText, /… while /);
    });
  });
}
