// The command line's conventions, without Nix: each command's own flags, its
// help (examples, environment, exit codes), Nix's `--option NAME VALUE`,
// --version, and shell completion that bash, zsh and fish really load.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { installExamples } from "../../cli/examples.ts";
import { ROOT } from "../../cli/flow.ts";
import { program } from "../../cli/main.ts";
import { joinNixOptionArgs } from "../../cli/options.ts";
import { PROFILES, TEST_SUITES } from "../../f/nix/lib/config/model.ts";
import { waitFor } from "../helpers/steps.ts";
import { runInTerminal } from "../helpers/terminal.ts";

const BIN = join(ROOT, "dist", "nixos-closure.cjs");
const scratch = mkdtempSync(join(tmpdir(), "nixos-closure-conventions-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
// No worker of anyone's: a state dir of this test's own (the worker variables of the calling shell go, and the
// FORCE_COLOR the test runner adds on a terminal).
const { WORKERS_DIR: _w, WORKER_INDEX: _i, WORKBENCH_DIR: _b, SYSTEM_DIR: _s, FORCE_COLOR: _f, ...outside } = process.env;
const env = { ...outside, XDG_STATE_HOME: join(scratch, "state"), NO_COLOR: "", TERM: "xterm-256color" };

const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv }, encoding: "utf8", timeout: 60_000 });

const flagsOf = (name: string) =>
  new Set(
    program()
      .commands.find((c) => c.name() === name)
      ?.options.map((o) => o.long),
  );

describe("each command takes the flags that apply to it", () => {
  test("render, lock and prepare-root do not offer what they cannot use", () => {
    assert.ok(!flagsOf("render").has("--publish-to"));
    assert.ok(!flagsOf("render").has("--prepare-root"));
    assert.ok(!flagsOf("render").has("--print-build-logs"));
    assert.ok(!flagsOf("prepare-root").has("--profile"));
    assert.ok(!flagsOf("prepare-root").has("--substituter"));
    assert.ok(!flagsOf("lock").has("--share"));
    assert.ok(!flagsOf("plan").has("--publish-to"));
    assert.ok(flagsOf("build").has("--publish-to") && flagsOf("build").has("--print-build-logs"));
    for (const [command, flag] of [
      ["render", "--publish-to"],
      ["prepare-root", "--profile"],
    ] as const) {
      const run = cli([command, flag, "x"]);
      assert.equal(run.status, 2, `${command} ${flag}`);
      assert.match(run.stderr, new RegExp(`unknown option '${flag}'\n\\(run nixos-closure ${command} --help for usage\\)`));
    }
  });

  test("every command's --help: its flags, two or three examples, the environment it reads, the exit codes", () => {
    for (const command of program().commands) {
      const help = cli([command.name(), "--help"]);
      assert.equal(help.status, 0, help.stderr);
      const examples = help.stdout.split("Examples:\n")[1]?.split("\n\n")[0]?.split("\n") ?? [];
      assert.ok(examples.length >= 2 && examples.length <= 3, `${command.name()}: ${examples.length} examples`);
      assert.ok(
        examples.every((line) => line.startsWith(`  $ nixos-closure ${command.name() === "plan" ? "" : command.name()}`)),
        examples.join("\n"),
      );
      if (command.name() === "completion") {
        // It runs no Nix and writes nothing: success, or a shell it does not know.
        assert.match(help.stdout, /Exit codes:\n {2}0 {4}success\n {2}2 {4}a shell it does not know\n?$/);
        continue;
      }
      assert.match(help.stdout, /Exit codes:\n {2}0 {4}success\n {2}1 .*\n {2}2 {4}bad input/);
      assert.match(help.stdout, /Environment:\n {2}[A-Z_]+ /);
    }
    assert.match(cli(["build", "--help"]).stdout, /^ {2}NIX_BIN +the directory holding the nix to run/m);
    const top = cli(["--help"]);
    assert.match(top.stdout, /Examples:\n {2}\$ nixos-closure demo/);
  });

  test("--version prints the package's version", () => {
    const run = cli(["--version"]);
    assert.equal(run.status, 0);
    assert.equal(run.stdout, `${JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version}\n`);
  });

  test("output piped to a reader that stops early (| head) ends quietly", () => {
    for (const args of ["--help", "completion bash"]) {
      const run = spawnSync("bash", ["-c", `"$0" "$1" ${args} | true; exit "\${PIPESTATUS[0]}"`, process.execPath, BIN], {
        env,
        encoding: "utf8",
      });
      assert.equal(run.stderr, "", args);
      assert.equal(run.status, 0, args);
    }
  });

  test("-v and -q together are refused", () => {
    const run = cli(["build", "-v", "-q"]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /option '-v, --verbose' cannot be used with option '-q, --quiet'/);
  });

  test("--dry-run cannot prepare a root", () => {
    const run = cli(["build", "--dry-run", "--prepare-root"]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /error: bad input: --prepare-root: true cannot go with --dry-run/);
  });
});

describe("Nix's --option NAME VALUE", () => {
  test("two words become one; NAME=VALUE stays; nothing after -- changes", () => {
    assert.deepEqual(joinNixOptionArgs(["build", "--option", "connect-timeout", "5", "--option", "fallback=true"]), [
      "build",
      "--option",
      "connect-timeout=5",
      "--option",
      "fallback=true",
    ]);
    assert.deepEqual(joinNixOptionArgs(["build", "--option", "max-silent-time", ""]), ["build", "--option", "max-silent-time="]);
    assert.deepEqual(joinNixOptionArgs(["diff", "--", "--option", "a", "b"]), ["diff", "--", "--option", "a", "b"]);
  });

  test("a setting the allow-list refuses is refused in the two-word form too, naming it", () => {
    const run = cli(["build", "--option", "post-build-hook", "/tmp/x.sh"]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--option: "post-build-hook" is not a setting the flow input may set/);
    const typed = cli(["build", "--option", "cores", "2"]);
    assert.equal(typed.status, 2);
    assert.match(typed.stderr, /--option: "cores" cannot be set here: use --cores\n/);
  });
});

describe("colour", () => {
  test("--color=always colours errors; NO_COLOR and --color=never do not; a pipe gets none by default", () => {
    assert.match(
      cli(["build", "--profile", "gaming", "--color=always"]).stderr,
      /\x1b\[31m\x1b\[1merror:\x1b\[22m\x1b\[39m bad input/,
    );
    assert.match(cli(["build", "--profile", "gaming", "--color", "never"]).stderr, /^error: bad input/);
    assert.match(cli(["build", "--profile", "gaming"]).stderr, /^error: bad input/);
  });

  test("on a terminal: colour unless NO_COLOR is set", async () => {
    for (const [noColor, coloured] of [
      ["", true],
      ["1", false],
    ] as const) {
      const run = runInTerminal([process.execPath, BIN, "build", "--profile", "gaming"], { env: { ...env, NO_COLOR: noColor } });
      assert.equal(await run.exited, 2);
      assert.equal(run.raw.includes("\x1b[31m"), coloured, JSON.stringify(run.raw));
      assert.match(run.screen().join("\n"), /error: bad input: --profile: "gaming"/);
    }
  });
});

describe("shell completion, generated from the same definitions", () => {
  const fakeBin = join(scratch, "bin");
  mkdirSync(fakeBin, { recursive: true });
  // The shells complete a command they can find; completion itself never runs it.
  writeFileSync(join(fakeBin, "nixos-closure"), "#!/bin/sh\nexit 0\n");
  chmodSync(join(fakeBin, "nixos-closure"), 0o755);
  const script = (shell: string) => {
    const run = cli(["completion", shell]);
    assert.equal(run.status, 0, run.stderr);
    return run.stdout;
  };

  test("bash: commands, each command's flags, and the values a flag takes", () => {
    const file = join(scratch, "nixos-closure.bash");
    writeFileSync(file, script("bash"));
    const complete = (...words: string[]) => {
      const run = spawnSync(
        "bash",
        [
          "-c",
          `source ${file}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _nixos_closure; printf '%s\\n' "\${COMPREPLY[@]}"`,
          "bash",
          "nixos-closure",
          ...words,
        ],
        { encoding: "utf8" },
      );
      assert.equal(run.status, 0, run.stderr);
      return run.stdout.split("\n").filter((w) => w !== "");
    };
    assert.deepEqual(complete("re"), ["render", "remove"]);
    assert.deepEqual(complete("build", "--pro"), ["--profile"]);
    assert.deepEqual(complete("build", "--profile", ""), [...PROFILES, "none"]);
    assert.deepEqual(
      complete("build", "--test-suite", "s"),
      TEST_SUITES.filter((s) => s.startsWith("s")),
    );
    assert.deepEqual(complete("render", "--pub"), [], "render has no --publish-to");
    assert.deepEqual(complete("completion", ""), ["-h", "--help", "bash", "zsh", "fish"]);
  });

  test("fish: the same, through fish's own completion", () => {
    const file = join(scratch, "nixos-closure.fish");
    writeFileSync(file, script("fish"));
    const complete = (line: string) => {
      const run = spawnSync("fish", ["--no-config", "-c", `source ${file}; complete -C ${JSON.stringify(line)}`], {
        encoding: "utf8",
        env: { ...env, PATH: `${fakeBin}:${process.env.PATH}` },
      });
      assert.equal(run.status, 0, run.stderr);
      return run.stdout
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => l.split("\t")[0]);
    };
    assert.deepEqual(complete("nixos-closure build --prof"), ["--profile"]);
    assert.deepEqual(complete("nixos-closure build --profile "), [...PROFILES, "none"].sort());
    assert.ok(complete("nixos-closure ").includes("prepare-root"));
    assert.deepEqual(complete("nixos-closure render --pub"), []);
  });

  test("VM names: remove, diff and --vm-name offer this worker's VMs, read from their config dirs", (t) => {
    // The real command on PATH this time: the shells ask it for the names.
    const realBin = join(scratch, "real-bin");
    mkdirSync(realBin, { recursive: true });
    writeFileSync(join(realBin, "nixos-closure"), `#!/bin/sh\nexec ${process.execPath} ${BIN} "$@"\n`);
    chmodSync(join(realBin, "nixos-closure"), 0o755);
    // A copy of the example library readable by all, as render requires (the checkout may sit in a private dir).
    const shared = mkdtempSync(join(tmpdir(), "nixos-closure-library-"));
    chmodSync(shared, 0o755);
    t.after(() => rmSync(shared, { recursive: true, force: true }));
    const library = installExamples(shared).libraryDir;
    for (const vm of ["alpha", "beta"]) {
      const run = cli(["render", "--nixos-flake", library, "--vm-name", vm, "-q"]);
      assert.equal(run.status, 0, run.stderr);
    }
    // A directory that is not a VM of ours is not offered, nor a copy of one under a name no VM can have
    // (a shell would expand it).
    const nixDir = join(scratch, "state", "nixos-closure", "workers", "0", "nix");
    mkdirSync(join(nixDir, "stray"), { recursive: true });
    for (const odd of ["a b", "*", "$(touch PWNED)"]) cpSync(join(nixDir, "alpha"), join(nixDir, odd), { recursive: true });
    assert.equal(cli(["list", "--names"]).stdout, "alpha\nbeta\n");
    const shellEnv = { ...env, PATH: `${realBin}:${process.env.PATH}` };
    const bashFile = join(scratch, "vms.bash");
    writeFileSync(bashFile, script("bash"));
    const bash = (...words: string[]) =>
      spawnSync(
        "bash",
        [
          "-c",
          `source ${bashFile}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _nixos_closure; printf '%s\\n' "\${COMPREPLY[@]}"`,
          "bash",
          "nixos-closure",
          ...words,
        ],
        { encoding: "utf8", env: shellEnv },
      )
        .stdout.split("\n")
        .filter((w) => w !== "");
    assert.deepEqual(bash("remove", "a"), ["alpha"]);
    assert.deepEqual(bash("diff", "alpha", "b"), ["beta"]);
    assert.deepEqual(bash("build", "--vm-name", ""), ["alpha", "beta"]);
    assert.equal(existsSync(join(process.cwd(), "PWNED")), false);
    const fishFile = join(scratch, "vms.fish");
    writeFileSync(fishFile, script("fish"));
    const fish = (line: string) =>
      spawnSync("fish", ["--no-config", "-c", `source ${fishFile}; complete -C ${JSON.stringify(line)}`], {
        encoding: "utf8",
        env: shellEnv,
      })
        .stdout.split("\n")
        .filter((l) => l !== "")
        .map((l) => l.split("\t")[0]);
    assert.deepEqual(fish("nixos-closure remove "), ["alpha", "beta"]);
    assert.deepEqual(fish("nixos-closure lock --vm-name b"), ["beta"]);
  });

  test("zsh: typed at a real zsh prompt, Tab completes the flag and lists its values", async () => {
    const functions = join(scratch, "zsh");
    mkdirSync(functions, { recursive: true });
    writeFileSync(join(functions, "_nixos-closure"), script("zsh"));
    const zsh = runInTerminal(["zsh", "-f", "-i"], {
      env: { PATH: `${fakeBin}:${process.env.PATH}`, TERM: "xterm-256color", HOME: scratch },
      columns: 100,
      rows: 20,
    });
    // Each step waits for what zsh shows (a busy machine may take seconds to load compinit).
    const shows = (what: string, pattern: RegExp) => waitFor(30_000, what, () => pattern.test(zsh.screen().join("\n")));
    try {
      await shows("the first prompt", /\S/);
      zsh.type(`PS1='ready$ '; fpath=(${functions} $fpath); autoload -U compinit; compinit -u -D\r`);
      await shows("compinit", /^ready\$ $/m);
      zsh.type("nixos-closure build --prof\t");
      await shows("--prof completed to --profile", /^ready\$ nixos-closure build --profile/m);
      zsh.type("\x15nixos-closure build --profile \t"); // Ctrl-U, then the flag and a space
      await shows("the profiles listed", /build-tools\s+controller\s+devel\s+monitoring\s+none/);
    } finally {
      zsh.kill("SIGKILL");
    }
  });
});
