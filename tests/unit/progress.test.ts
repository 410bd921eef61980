import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { drvName } from "../../f/nix/lib/build/plan.ts";
import { formatProgress, ProgressReporter } from "../../f/nix/lib/build/progress/display.ts";
import { BuildProgress } from "../../f/nix/lib/build/progress/tracker.ts";
import type { Logger } from "../../f/nix/lib/core/log.ts";
import { count, parseJsonExactIntegers, parseLogLine } from "../../f/nix/lib/nix/events.ts";
import { captureLog } from "../helpers/steps.ts";
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

  test("plain lines, unknown actions and broken JSON come back as text", () => {
    assert.deepEqual(parseLogLine("warning: plain"), { action: "text", text: "warning: plain" });
    assert.equal(parseLogLine('@nix {"action":"future"}').action, "text");
    assert.equal(parseLogLine("@nix {oops").action, "text");
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
    // The failed derivation's log, in full, with its name.
    const start = shown.indexOf("----- last 2 log lines of first-1.0 -----");
    assert.ok(start >= 0, shown.join("\n"));
    assert.deepEqual(shown.slice(start + 1, start + 4), ["first: line 1", "first: line 2", "----- end of first-1.0 log -----"]);
    assert.ok(
      progress.messages.includes(
        "error: builder for '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-first-1.0.drv' failed with exit code 2",
      ),
    );
    const snapshot = progress.snapshot();
    assert.equal(snapshot.built, 1);
    assert.equal(snapshot.toBuild, 2);
    assert.equal(snapshot.toFetch, 0, "a u64 sentinel is unknown, not a count");
  });

  for (const version of ["2.8", "2.26"]) {
    test(`a failing build recorded from Nix ${version}`, () => {
      const { progress, shown } = feed(recorded(`failed-build-nix-${version}.log`));
      const header = shown.findIndex((l) => /^----- last 3 log lines of xfsprogs-6\.13\.0 -----$/.test(l));
      assert.ok(header >= 0, shown.join("\n"));
      assert.deepEqual(shown.slice(header + 1, header + 4), [
        "configuring xfsprogs",
        "checking headers",
        "xfs/linux.h: No such file",
      ]);
      assert.ok(progress.evaluationMs !== null);
      assert.ok(!progress.built.some((d) => d.includes("xfsprogs")), "a failed derivation is not counted as built");
      assert.ok(progress.messages.some((m) => /^error: builder for '.*xfsprogs-6\.13\.0\.drv' failed with exit code 2$/.test(m)));
      if (version === "2.26") {
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
          { name: "linux-6.1", phase: "buildPhase" },
          { name: "gcc-14", phase: null },
        ],
      }),
      "[01:23] building and fetching: 3/17 built, 120/900 fetched (45.2 MiB/210.0 MiB); now: linux-6.1 (buildPhase), gcc-14",
    );
  });
});

/** A logger whose raw writes land in `out`, one entry per write. */
function writesTo(out: string[], terminal: Logger["terminal"]): Logger {
  return { ...captureLog(terminal), write: (text) => out.push(text) };
}

describe("showing progress", () => {
  const lines = recorded("failed-build-nix-2.26.log");

  test("a job log gets plain lines: at phase changes and at most every 10 s", () => {
    // (a snapshot is taken at most every second: one event per second here)
    let clock = 0;
    const out: string[] = [];
    const progress = new BuildProgress(() => clock);
    const reporter = new ProgressReporter(progress, writesTo(out, null), { now: () => clock });
    for (const line of lines) {
      clock += 1000; // one second per event: 115 s in all
      reporter.line(line);
    }
    reporter.finish();
    const statusLines = out.filter((t) => /^\[\d\d:\d\d\] /.test(t));
    assert.ok(
      statusLines.length >= 2 && statusLines.length <= 2 + 115 / 10 + 2,
      `${statusLines.length} lines:\n${statusLines.join("")}`,
    );
    assert.ok(
      out.every((t) => !t.includes("\r") && !t.includes("\x1b")),
      "no terminal control in a job log",
    );
    assert.match(statusLines[0] ?? "", /evaluating/);
  });

  test("a terminal gets one status line redrawn in place", () => {
    let clock = 0;
    const out: string[] = [];
    const reporter = new ProgressReporter(new BuildProgress(() => clock), writesTo(out, { columns: 60 }), { now: () => clock });
    for (const line of lines) {
      clock += 60; // a redraw at most every 100 ms
      reporter.line(line);
    }
    reporter.finish();
    const redraws = out.filter((t) => t.startsWith("\r\x1b[K["));
    assert.ok(redraws.length > 3 && redraws.length <= lines.length / 1.5, `${redraws.length} redraws for ${lines.length} events`);
    assert.ok(redraws.every((t) => t.length <= "\r\x1b[K".length + 60));
    assert.ok(
      out.some((t) => t === "xfs/linux.h: No such file\n"),
      "the failed log is printed above the status line",
    );
  });
});
