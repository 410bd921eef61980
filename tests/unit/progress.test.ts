import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { drvName } from "../../f/nix/lib/build/plan.ts";
import { formatProgress, ProgressReporter } from "../../f/nix/lib/build/progress/display.ts";
import { columnsOf, printable } from "../../f/nix/lib/build/progress/live_area.ts";
import { watchCopies } from "../../f/nix/lib/build/progress/source_copy.ts";
import { BuildProgress } from "../../f/nix/lib/build/progress/tracker.ts";
import { type Logger, streamLogger, type Verbosity } from "../../f/nix/lib/core/log.ts";
import { count, parseJsonExactIntegers, parseLogLine } from "../../f/nix/lib/nix/events.ts";
import { waitFor } from "../helpers/steps.ts";
import { emulator, type Screen } from "../helpers/terminal.ts";
import { FIXTURES } from "../helpers/workbench.ts";

const recorded = (name: string) =>
  readFileSync(join(FIXTURES, "nix-events", name), "utf8")
    .trimEnd()
    .split("\n");

function feed(lines: string[]): { progress: BuildProgress; shown: string[] } {
  let clock = 0;
  const progress = new BuildProgress(() => (clock += 10));
  const shown = lines.flatMap((line) => progress.handle(line));
  return { progress, shown };
}

describe("the internal-json protocol", () => {
  test("ids and u64 fields keep every digit", () => {
    assert.deepEqual(
      parseJsonExactIntegers(
        '{"id":18446744073709551615,"f":[1,9223372036854775808,"9223372036854775808x"],"s":"12345678901234567890"}',
      ),
      {
        id: "18446744073709551615",
        f: [1, "9223372036854775808", "9223372036854775808x"],
        s: "12345678901234567890",
      },
    );
    const start = parseLogLine('@nix {"action":"start","id":9007199254740993,"level":0,"parent":0,"text":"","type":104}');
    assert.equal(start.action === "start" && start.id, "9007199254740993");
    assert.equal(count("9223372036854775808"), null);
    assert.equal(count(42), 42);
  });

  test("plain lines and broken JSON come back as text; records of unknown actions as nothing to show", () => {
    assert.deepEqual(parseLogLine("warning: plain"), { action: "text", text: "warning: plain" });
    assert.equal(parseLogLine("@nix {oops").action, "text");
    assert.deepEqual(parseLogLine('@nix {"action":"future"}'), { action: "unknown" });
    assert.deepEqual(parseLogLine("@nix [1,2]"), { action: "unknown" });
    assert.deepEqual(parseLogLine("@nix 42"), { action: "unknown" });
  });

  test("messages lose their colours", () => {
    const msg = parseLogLine('@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m boom"}');
    assert.deepEqual(msg, { action: "msg", level: 0, msg: "error: boom" });
  });
});

describe("progress from event streams", () => {
  test("a synthetic stream with every trap: unknown types, huge ids, u64 fields, plain lines", () => {
    const { progress, shown } = feed(recorded("traps.log"));
    assert.deepEqual(progress.built, ["/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-second-2.0.drv"]);
    assert.ok(shown.includes("plain text before any event"));
    assert.ok(shown.includes("interleaved plain line"));
    assert.ok(shown.includes("@nix {not json at all"));
    assert.ok(shown.includes("warning: something to know"));
    // The failed derivation's last lines go into the error, once, with how to read all of them; nothing live.
    assert.ok(!shown.some((l) => l.includes("first: line")), shown.join("\n"));
    const error = progress.messages.indexOf(
      "error: builder for '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-first-1.0.drv' failed with exit code 2",
    );
    assert.ok(error >= 0, progress.messages.join("\n"));
    assert.deepEqual(progress.messages.slice(error + 1, error + 5), [
      "       last 2 log lines:",
      "       > first: line 1",
      "       > first: line 2",
      "       For full logs, run 'nix log /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-first-1.0.drv'.",
    ]);
    assert.deepEqual(progress.failedBuilds, ["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-first-1.0.drv"]);
    const snapshot = progress.snapshot();
    assert.equal(snapshot.built, 1);
    assert.equal(snapshot.toBuild, 2);
    assert.equal(snapshot.toFetch, 0, "a u64 sentinel is unknown, not a count");
  });

  for (const version of ["2.8", "2.26", "2.34"]) {
    test(`a failing build recorded from Nix ${version}`, () => {
      const { progress } = feed(recorded(`failed-build-nix-${version}.log`));
      const header = progress.messages.indexOf("       last 3 log lines:");
      assert.ok(header >= 0, progress.messages.join("\n"));
      assert.deepEqual(progress.messages.slice(header + 1, header + 5), [
        "       > configuring xfsprogs",
        "       > checking headers",
        "       > xfs/linux.h: No such file",
        `       For full logs, run 'nix log ${progress.failedBuilds[0]}'.`,
      ]);
      assert.ok(progress.evaluationMs !== null);
      assert.ok(!progress.built.some((d) => d.includes("xfsprogs")), "a failed derivation is not counted as built");
      // Nix's words for it changed in 2.34: "Cannot build '<drv>'." and a "Reason:" line.
      assert.ok(
        progress.messages.some(
          (m) =>
            /^error: builder for '.*xfsprogs-6\.13\.0\.drv' failed with exit code 2$/.test(m) ||
            /^error: Cannot build '.*xfsprogs-6\.13\.0\.drv'\.$/.test(m),
        ),
        progress.messages.join("\n"),
      );
      assert.deepEqual(progress.failedBuilds.length, 1);
      if (version !== "2.8") {
        assert.equal(progress.plan.derivations.length, 4);
        assert.ok(progress.plan.derivations.every((d) => d.endsWith(".drv")));
      }
    });
  }

  test("names and the status line", () => {
    assert.equal(drvName("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-linux-6.1.drv"), "linux-6.1");
    assert.equal(
      formatProgress({
        elapsedMs: 83_000,
        phase: "building and fetching",
        built: 3,
        toBuild: 17,
        failed: 0,
        fetched: 120,
        toFetch: 900,
        bytesFetched: 45.2 * 2 ** 20,
        bytesToFetch: 210 * 2 ** 20,
        building: [
          { name: "linux-6.1", phase: "buildPhase", elapsedMs: 42_000, lastLine: "CC fs/xfs/xfs_inode.o" },
          { name: "gcc-14", phase: null, elapsedMs: 1000, lastLine: null },
        ],
      }),
      "[01:23] building and fetching: 3/17 built, 120/900 fetched (45.2 MiB of 210.0 MiB); now: linux-6.1 00:42 buildPhase, gcc-14 00:01",
    );
  });
});

/** A logger on a terminal of its own (the emulator) whose size a test changes, or on a job log. */
function terminalLog(screen: Screen | null, size = { columns: 60, rows: 24 }, verbosity: Verbosity = "normal") {
  const listeners: (() => void)[] = [];
  const raw: string[] = [];
  const log = streamLogger(
    {
      write: (text: string) => {
        raw.push(text);
        screen?.write(text);
      },
      isTTY: screen !== null,
      get columns() {
        return size.columns;
      },
      get rows() {
        return size.rows;
      },
      on: (_event: "resize", listener: () => void) => listeners.push(listener),
      off: () => {},
    },
    { verbosity },
  );
  return {
    log,
    raw,
    async resize(columns: number, rows: number) {
      await screen?.resize(columns, rows);
      size.columns = columns;
      size.rows = rows;
      for (const listener of listeners) listener();
    },
  };
}

/** A build of two derivations, the first printing lines, as Nix 2.26 reports it. */
function twoBuilds(): string[] {
  const drv = (name: string) => `/nix/store/${"c".repeat(32)}-${name}.drv`;
  const event = (e: object) => `@nix ${JSON.stringify(e)}`;
  return [
    event({ action: "start", id: 1, level: 4, parent: 0, text: "", type: 104 }),
    event({ action: "result", id: 1, type: 105, fields: [0, 2, 0, 0] }),
    event({
      action: "start",
      id: 2,
      level: 3,
      parent: 1,
      text: `building '${drv("xfsprogs-6.13.0")}'`,
      type: 105,
      fields: [drv("xfsprogs-6.13.0"), "", 1, 1],
    }),
    event({ action: "result", id: 2, type: 104, fields: ["buildPhase"] }),
    event({ action: "result", id: 2, type: 101, fields: ["\u001b[32mCC\u001b[0m\tlibxfs/xfs_inode.o"] }),
    event({
      action: "result",
      id: 2,
      type: 101,
      fields: ["CC libxfs/xfs_btree.o and a line long enough to be cut at sixty columns wide"],
    }),
    event({
      action: "start",
      id: 3,
      level: 3,
      parent: 1,
      text: `building '${drv("fio-3.38")}'`,
      type: 105,
      fields: [drv("fio-3.38"), "", 1, 1],
    }),
    event({ action: "result", id: 3, type: 101, fields: ["fio: configure"] }),
    event({ action: "stop", id: 2 }),
    event({ action: "result", id: 1, type: 105, fields: [1, 2, 1, 0] }),
    event({ action: "stop", id: 3 }),
    event({ action: "result", id: 1, type: 105, fields: [2, 2, 0, 0] }),
    event({ action: "stop", id: 1 }),
  ];
}

/** A reporter on `log`, fed the first eight events of twoBuilds a second apart (both builds running), then redrawn. */
function midBuild(log: Logger) {
  const clock = { now: 0 };
  const reporter = new ProgressReporter(new BuildProgress(() => clock.now), log, { now: () => clock.now });
  const events = twoBuilds();
  for (const line of events.slice(0, 8)) {
    clock.now += 1000;
    reporter.line(line);
  }
  reporter.update(true);
  return { reporter, clock, rest: events.slice(8) };
}

describe("what the evaluation prints", () => {
  test("traces and evaluation warnings are shown as they come; Nix's errors wait for the end", () => {
    const { shown, progress } = feed([
      '@nix {"action":"msg","level":0,"msg":"trace: warning: the option `foo` is deprecated"}',
      '@nix {"action":"msg","level":0,"msg":"evaluation warning: something to act on"}',
      '@nix {"action":"msg","level":0,"msg":"error: attribute \'x\' missing"}',
    ]);
    assert.deepEqual(shown, ["trace: warning: the option `foo` is deprecated", "evaluation warning: something to act on"]);
    assert.ok(progress.messages.includes("error: attribute 'x' missing"));
  });
});

describe("showing progress", () => {
  const lines = recorded("failed-build-nix-2.26.log");

  test("a job log gets plain lines: at phase changes and at most every 10 s, then one summary line", () => {
    // (a snapshot is taken at most every second: one event per second here)
    let clock = 0;
    const { log, raw } = terminalLog(null);
    const progress = new BuildProgress(() => clock);
    const reporter = new ProgressReporter(progress, log, { now: () => clock });
    for (const line of lines) {
      clock += 1000; // one second per event: 115 s in all
      reporter.line(line);
    }
    reporter.finish("failed");
    const statusLines = raw.filter((t) => /^\[\d\d:\d\d\] /.test(t));
    assert.ok(
      statusLines.length >= 2 && statusLines.length <= 2 + 115 / 10 + 2,
      `${statusLines.length} lines:\n${statusLines.join("")}`,
    );
    assert.ok(
      raw.every((t) => !t.includes("\r") && !t.includes("\x1b")),
      "no terminal control in a job log",
    );
    assert.match(statusLines[0] ?? "", /evaluating/);
    assert.match(raw.at(-1) ?? "", /^xfsprogs-6\.13\.0 failed after 115\.0 s \(built 1 derivation before that\)\n$/);
  });

  test("a terminal gets a live block: each running build with its time, phase and last line; then one summary line", async () => {
    const screen = emulator(60, 24);
    const { log } = terminalLog(screen);
    log.info("+ nix build (a command printed before the build)");
    const { reporter, clock, rest } = midBuild(log);
    const during = await screen.lines();
    assert.deepEqual(during, [
      "+ nix build (a command printed before the build)",
      "  00:05  xfsprogs-6.13.0  buildPhase  CC libxfs/xfs_btree.…",
      "  00:01  fio-3.38                     fio: configure",
      "[00:08] building: 0/2 built",
    ]);
    for (const line of rest) {
      clock.now += 1000;
      reporter.line(line);
    }
    reporter.finish("succeeded");
    assert.deepEqual(await screen.lines(), ["+ nix build (a command printed before the build)", "built 2 derivations in 13.0 s"]);
  });

  test("a resize mid-build redraws at the new width and leaves nothing of the old block", async () => {
    const screen = emulator(60, 24);
    const terminal = terminalLog(screen);
    const { reporter, clock, rest } = midBuild(terminal.log);
    await terminal.resize(25, 24); // narrower: the terminal re-wraps the old block's lines
    assert.deepEqual(await screen.lines(), ["  00:05  xfsprogs-6.13.…", "  00:01  fio-3.38      …", "[00:08] building: 0/2 b…"]);
    await terminal.resize(80, 24);
    clock.now += 1000;
    reporter.update(true);
    assert.deepEqual(await screen.lines(), [
      "  00:06  xfsprogs-6.13.0  buildPhase  CC libxfs/xfs_btree.o and a line long en…",
      "  00:02  fio-3.38                     fio: configure",
      "[00:09] building: 0/2 built",
    ]);
    for (const line of rest) reporter.line(line);
    reporter.finish("succeeded");
    assert.deepEqual(await screen.lines(), ["built 2 derivations in 9.0 s"]);
  });

  test("wide characters (CJK, emoji) are counted in columns: cut to fit, and no fragment on a resize", async () => {
    const clock = 0;
    const screen = emulator(40, 24);
    const terminal = terminalLog(screen, { columns: 40, rows: 24 });
    const reporter = new ProgressReporter(new BuildProgress(() => clock), terminal.log, { now: () => clock });
    const drv = `/nix/store/${"d".repeat(32)}-kmod-33.drv`;
    const event = (e: object) => `@nix ${JSON.stringify(e)}`;
    reporter.line(event({ action: "start", id: 7, level: 3, parent: 0, text: "", type: 105, fields: [drv, "", 1, 1] }));
    reporter.line(event({ action: "result", id: 7, type: 101, fields: ["漢字漢字漢字漢字漢字 😀😀😀😀😀😀 done"] }));
    reporter.update(true);
    assert.deepEqual(await screen.lines(), ["  00:00  kmod-33  漢字漢字漢字漢字漢字…", "[00:00] building: 0/0 built"]);
    await terminal.resize(20, 24);
    assert.deepEqual(await screen.lines(), ["  00:00  kmod-33  …", "[00:00] building: …"]);
    reporter.line(event({ action: "stop", id: 7 }));
    reporter.finish("succeeded");
    assert.deepEqual(await screen.lines(), ["built 1 derivation i", "n 0.0 s"]);
    // Emoji past the smileys, and the symbols shown as emoji, count two; the symbols shown as text, one.
    assert.equal(columnsOf("🚀☕🧪🥼✅⚡"), 12);
    assert.equal(columnsOf("✔✓★✗→"), 5);
  });

  test("a window shorter than the block: the block shrinks to fit, and no fragment stays", async () => {
    const screen = emulator(60, 3);
    const terminal = terminalLog(screen, { columns: 60, rows: 3 });
    terminal.log.info("+ nix build");
    const { reporter, rest } = midBuild(terminal.log);
    assert.deepEqual(await screen.lines(), ["+ nix build", "  and 2 more", "[00:08] building: 0/2 built"]);
    for (const line of rest) reporter.line(line);
    reporter.finish("succeeded");
    assert.deepEqual(await screen.lines(), ["+ nix build", "built 2 derivations in 8.0 s"]);
  });

  test("interrupted: the builds Nix stops after the interrupt were killed, not built", () => {
    const { log, raw } = terminalLog(null);
    const progress = new BuildProgress(() => 0);
    const reporter = new ProgressReporter(progress, log, { now: () => 0 });
    const events = twoBuilds();
    for (const line of events.slice(0, 8)) reporter.line(line);
    progress.interrupt();
    for (const line of events.slice(8)) reporter.line(line);
    reporter.finish("interrupted");
    assert.deepEqual(progress.built, []);
    assert.equal(raw.at(-1), "interrupted after 0.0 s\n");
  });

  test("-L: every builder line, prefixed with its package, as plain text above the block", () => {
    const progress = new BuildProgress(() => 0, { buildLogs: true });
    const shown = twoBuilds().flatMap((line) => progress.handle(line));
    assert.deepEqual(shown, [
      "xfsprogs-6.13.0> \u001b[32mCC\u001b[0m\tlibxfs/xfs_inode.o",
      "xfsprogs-6.13.0> CC libxfs/xfs_btree.o and a line long enough to be cut at sixty columns wide",
      "fio-3.38> fio: configure",
    ]);
    assert.equal(printable(shown[0] ?? ""), "xfsprogs-6.13.0> CC  libxfs/xfs_inode.o");
    // The failed builder's lines were shown as they came: its error only says where all of them are.
    const failed = new BuildProgress(() => 0, { buildLogs: true });
    for (const line of recorded("failed-build-nix-2.26.log")) failed.handle(line);
    assert.ok(!failed.messages.some((m) => m.includes("last 3 log lines")));
    assert.ok(failed.messages.some((m) => m.startsWith("       For full logs, run 'nix log ")));
  });

  test("-v: Nix's own words (what it builds), not only the counts", () => {
    const progress = new BuildProgress(() => 0, { chatter: true });
    const shown = twoBuilds().flatMap((line) => progress.handle(line));
    assert.deepEqual(
      shown.map((l) => l.replace(/c{32}/, "…")),
      ["building '/nix/store/…-xfsprogs-6.13.0.drv'", "building '/nix/store/…-fio-3.38.drv'"],
    );
  });

  test("-L in a job log or a pipe: the builder's lines without their escapes", () => {
    const { log, raw } = terminalLog(null);
    const reporter = new ProgressReporter(new BuildProgress(() => 0, { buildLogs: true }), log, { now: () => 0 });
    for (const line of twoBuilds()) reporter.line(line);
    reporter.finish("succeeded");
    assert.ok(raw.includes("xfsprogs-6.13.0> CC  libxfs/xfs_inode.o\n"), raw.join(""));
    assert.ok(raw.includes("fio-3.38> fio: configure\n"), raw.join(""));
    assert.ok(!raw.join("").includes("\x1b"), "no escape in a job log");
  });

  test("quiet: nothing at all", () => {
    const { log, raw } = terminalLog(emulator(60, 24), undefined, "quiet");
    const reporter = new ProgressReporter(new BuildProgress(() => 0), log, { now: () => 0 });
    for (const line of twoBuilds()) reporter.line(line);
    reporter.finish("succeeded");
    assert.deepEqual(raw, []);
  });

  test("a builder's escapes and carriage returns never reach the screen", () => {
    assert.equal(printable("\u001b[1;31mred\u001b[0m and \u001b]0;title\u0007plain"), "red and plain");
    assert.equal(printable("10%\r50%\r100%"), "100%");
    assert.equal(printable("bell\u0007 tab\tend\r\n"), "bell tab  end");
  });

  test("a lock's copy that takes long: a line per source with its size and time, then one line", async () => {
    const screen = emulator(80, 24);
    const { log, raw } = terminalLog(screen, { columns: 80, rows: 24 });
    const sources = [
      { what: "/home/me/src/xfsprogs", bytes: () => 1.5 * 2 ** 30 },
      { what: "the files git tracks in /home/me/src/fio", bytes: () => 12_345 },
    ];
    const quick = watchCopies(log, sources, 60_000);
    quick.line("warning: creating lock file");
    quick.finish();
    assert.deepEqual(await screen.lines(), ["warning: creating lock file"], "a quick lock shows no copy");
    const watch = watchCopies(log, sources, 50);
    await waitFor(5000, "the copies shown", () => raw.some((text) => text.includes("copying")));
    watch.line("warning: updating lock file");
    assert.deepEqual(
      (await screen.lines()).map((line) => line.replace(/\d\d:\d\d$/, "MM:SS")),
      [
        "warning: creating lock file",
        "warning: updating lock file",
        "copying /home/me/src/xfsprogs: 1.5 GiB  MM:SS",
        "copying the files git tracks in /home/me/src/fio: 12.1 KiB  MM:SS",
      ],
    );
    watch.finish();
    assert.deepEqual(
      (await screen.lines()).map((line) => line.replace(/in [\d.]+ s$/, "in N s")),
      [
        "warning: creating lock file",
        "warning: updating lock file",
        "copied /home/me/src/xfsprogs: 1.5 GiB in N s",
        "copied the files git tracks in /home/me/src/fio: 12.1 KiB in N s",
      ],
    );
    const job = terminalLog(null);
    const logged = watchCopies(job.log, sources, 10);
    await waitFor(5000, "the copies logged", () => job.raw.length > 0);
    logged.finish();
    assert.deepEqual(job.raw, [
      "copying /home/me/src/xfsprogs: 1.5 GiB into the store\n",
      "copying the files git tracks in /home/me/src/fio: 12.1 KiB into the store\n",
    ]);
  });
});
