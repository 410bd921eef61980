// What every supported Nix prints, read the same way: path-info JSON in each
// shape (recorded from Nix 2.8, 2.26 and 2.34 here, written from the
// documented shapes for 2.18, Lix and Determinate Nix), GC roots, closure
// diffs, lock files; and the records and lines of Nix no user needs to see.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ProgressReporter } from "../../f/nix/lib/build/progress/display.ts";
import { BuildProgress } from "../../f/nix/lib/build/progress/tracker.ts";
import { exactDeltas, formatClosureDiff, packageOf, parseDiffClosures } from "../../f/nix/lib/build/report.ts";
import { SetupError } from "../../f/nix/lib/core/errors.ts";
import { streamLogger } from "../../f/nix/lib/core/log.ts";
import { count, parseLogLine } from "../../f/nix/lib/nix/events.ts";
import { lockChanges } from "../../f/nix/lib/nix/flake_lock.ts";
import { type PathInfo, parseBuildJson, parsePathInfoJson } from "../../f/nix/lib/nix/json.ts";
import { lockOutput, parseGcRoots, pathInfoJsonArgs } from "../../f/nix/lib/nix/operations.ts";
import { isDeprecationNotice, nixErrorText } from "../../f/nix/lib/nix/run.ts";
import { type NixVersion, parseNixVersion } from "../../f/nix/lib/nix/version.ts";
import { FIXTURES } from "../helpers/workbench.ts";

const sample = (name: string) => readFileSync(join(FIXTURES, "path-info", name), "utf8");
const byPath = (infos: PathInfo[]) => [...infos].sort((a, b) => (a.path < b.path ? -1 : 1));
const version = (text: string) => parseNixVersion(text) as NixVersion;

const DEP = "/nix/store/jlid9zcax41zxp74vca9ihbi2ws0lxym-probe-dep";
const TOP = "/nix/store/zqn16184c41liq5vmij9psg8ipkrbr62-probe-top";
const TOP_DRV = "/nix/store/0xp0hki5nbicb8g9179mk4h0ylcrkjmv-probe-top.drv";
const DEP_DRV = "/nix/store/fngd9zjriz02zrc6h5sk9q93gr878f5z-probe-dep.drv";

/** Two built paths and one not in the store, as `nix path-info --json DEP TOP <missing>` reads them. */
const OUTPUTS: PathInfo[] = [
  { path: DEP, narSize: 120, references: [] },
  { path: TOP, narSize: 168, references: [DEP] },
];
/** The derivations of the same, as `nix path-info --json --derivation --recursive TOP_DRV` reads them. */
const DERIVATIONS: PathInfo[] = [
  { path: TOP_DRV, narSize: 504, references: [DEP_DRV] },
  { path: DEP_DRV, narSize: 384, references: [] },
];

describe("nix path-info --json in every shape", () => {
  // Recorded here: nix-2.8 (a list, `"valid": false` for the missing path), nix-2.26 (keyed by full path,
  // null for it), nix-2.34-format-1 (the same plus `storeDir` and `version`), nix-2.34-format-2 (`info`
  // keyed by base name, base-name references, a structured `ca`). Written from the documented shapes:
  // nix-2.18 (the list, with `ca` and signatures), lix-2.93 (Lix keeps the list), determinate-3.6
  // (Determinate Nix 3.6.2 is Nix 2.29: keyed by full path).
  for (const name of [
    "nix-2.8",
    "nix-2.18",
    "nix-2.26",
    "nix-2.34-format-1",
    "nix-2.34-format-2",
    "lix-2.93",
    "determinate-3.6",
  ]) {
    test(`${name}: full store paths, sizes and references; the missing path left out`, () => {
      assert.deepEqual(byPath(parsePathInfoJson(sample(`${name}.json`))), byPath(OUTPUTS));
    });
  }
  for (const name of ["nix-2.8", "nix-2.26", "nix-2.34-format-1", "nix-2.34-format-2"]) {
    test(`${name}: derivations, a content address as a string or structured`, () => {
      assert.deepEqual(byPath(parsePathInfoJson(sample(`${name}-drv.json`))), byPath(DERIVATIONS));
    });
  }
  test("format 2 in another store dir keeps that dir", () => {
    const text = JSON.stringify({
      info: { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x": { narSize: 1, references: ["bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-y"] } },
      storeDir: "/gnu/store",
      version: 2,
    });
    assert.deepEqual(parsePathInfoJson(text), [
      {
        path: "/gnu/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x",
        narSize: 1,
        references: ["/gnu/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-y"],
      },
    ]);
  });
  test("fields no Nix has printed yet change nothing; what is no JSON is an error naming the command", () => {
    const text = JSON.stringify({
      info: {
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x": { narSize: 7, references: [], ca: { method: "nar", hash: {} }, newField: [1] },
      },
      storeDir: "/nix/store",
      version: 3,
      somethingElse: { a: 1 },
    });
    assert.deepEqual(parsePathInfoJson(text), [
      { path: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", narSize: 7, references: [] },
    ]);
    assert.throws(
      () => parsePathInfoJson("warning: something\n{"),
      (e: Error) => e instanceof SetupError && /path-info/.test(e.message),
    );
    assert.throws(() => parsePathInfoJson('"a string"'), SetupError);
  });
  test("--json-format 2 is asked of Nix 2.33 and later (Determinate on such a Nix too), never of Lix or an older Nix", () => {
    const plain = ["--json"];
    const formatted = ["--json", "--json-format", "2"];
    assert.deepEqual(pathInfoJsonArgs(version("nix (Nix) 2.8.0")), plain);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Nix) 2.18.9")), plain);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Nix) 2.26.3")), plain);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Nix) 2.32.4")), plain);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Nix) 2.33.0")), formatted);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Nix) 2.34.8")), formatted);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Nix) 3.0.0")), formatted);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Lix, like Nix) 2.93.3")), plain);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Determinate Nix 3.6.2) 2.29.0")), plain);
    assert.deepEqual(pathInfoJsonArgs(version("nix (Determinate Nix 3.15.1) 2.33.1")), formatted);
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
});

describe("nix build --json", () => {
  test("with and without timing keys", () => {
    assert.deepEqual(parseBuildJson('[{"drvPath":"/d.drv","outputs":{"out":"/o"}}]'), [
      { drvPath: "/d.drv", outputs: { out: "/o" } },
    ]);
    assert.deepEqual(parseBuildJson('[{"drvPath":"/d.drv","outputs":{"out":null},"startTime":1,"stopTime":2}]'), [
      { drvPath: "/d.drv", outputs: {} },
    ]);
    assert.throws(() => parseBuildJson("building..."), /not JSON/);
  });
});

describe("GC roots", () => {
  test("bare links before 2.34, quoted ones (with escapes) since; lines that are no root are skipped", () => {
    const store = "/nix/store/zqn16184c41liq5vmij9psg8ipkrbr62-probe-top";
    const text = [
      `/tmp/vm1/result -> ${store}`,
      `{temp:20540} -> ${store}`,
      `{censored} -> ${store}`,
      `"/tmp/vm 2/result" -> ${store}`,
      `"/tmp/we\\"ird \\\\ name -> x" -> ${store}`,
      `"{temp:20540}" -> ${store}`,
      `"/proc/16736/fd/3" -> ${store}`,
      "/tmp/not-a-store-path -> /elsewhere",
      "",
    ].join("\n");
    assert.deepEqual(
      parseGcRoots(text).map((root) => root.link),
      [
        "/tmp/vm1/result",
        "{temp:20540}",
        "{censored}",
        "/tmp/vm 2/result",
        '/tmp/we"ird \\ name -> x',
        "{temp:20540}",
        "/proc/16736/fd/3",
      ],
    );
    assert.ok(parseGcRoots(text).every((root) => root.target === store));
  });
});

describe("closure diffs", () => {
  test("Nix 2.34's sizes: no sign on a growth, a larger unit for a larger change", () => {
    assert.deepEqual(
      parseDiffClosures("fio: \x1b[31;1m179.7 KiB\x1b[0m\nlinux: 6.1 → 6.2, \x1b[31;1m19.1 MiB\x1b[0m\ngcc: -1.5 GiB\n"),
      [
        { name: "fio", from: [], to: [], size_delta: Math.round(179.7 * 1024) },
        { name: "linux", from: ["6.1"], to: ["6.2"], size_delta: Math.round(19.1 * 1024 ** 2) },
        { name: "gcc", from: [], to: [], size_delta: Math.round(-1.5 * 1024 ** 3) },
      ],
    );
  });
  test("the package a path counts for, as diff-closures groups them", () => {
    const p = (name: string) => `/nix/store/${"a".repeat(32)}-${name}`;
    assert.equal(packageOf(p("fio-3.38")), "fio");
    assert.equal(packageOf(p("util-linux-2.40-bin")), "util-linux");
    assert.equal(packageOf(p("glibc-2.40-66-dev")), "glibc");
    assert.equal(packageOf(p("gcc-14.2-lib64")), "gcc");
    assert.equal(packageOf(p("nixos-system-vm1-26.05.fixture")), "nixos-system-vm1");
    assert.equal(packageOf(p("system-path")), "system");
    assert.equal(packageOf(p("source")), "source");
  });
  test("sizes are the closures' own bytes, whatever rounding the Nix printed", () => {
    const p = (hash: string, name: string) => `/nix/store/${hash.repeat(32)}-${name}`;
    const before: PathInfo[] = [
      { path: p("a", "fio-3.38"), narSize: 16_000, references: [] },
      { path: p("b", "linux-6.1"), narSize: 100_000_000, references: [] },
      { path: p("c", "linux-6.1-modules"), narSize: 5_000, references: [] },
      { path: p("g", "bash-5.2"), narSize: 1_000, references: [] },
    ];
    const after: PathInfo[] = [
      { path: p("d", "fio-3.38"), narSize: 200_000, references: [] },
      { path: p("e", "linux-6.2"), narSize: 120_000_000, references: [] },
      { path: p("f", "linux-6.2-modules"), narSize: 6_000, references: [] },
      { path: p("g", "bash-5.2"), narSize: 1_000, references: [] },
    ];
    const expected = [
      { name: "fio", from: [], to: [], size_delta: 184_000 },
      { name: "linux", from: ["6.1"], to: ["6.2"], size_delta: 20_001_000 },
      { name: "kdevops-tools", from: ["0.1"], to: [], size_delta: null },
    ];
    // The same diff as Nix 2.26 and Nix 2.34 print it.
    for (const printed of [
      "fio: +179.7 KiB\nlinux: 6.1 → 6.2, +19532.2 KiB\nkdevops-tools: 0.1 → ∅\n",
      "fio: 179.7 KiB\nlinux: 6.1 → 6.2, 19.1 MiB\nkdevops-tools: 0.1 → ∅\n",
    ]) {
      assert.deepEqual(exactDeltas(parseDiffClosures(printed), before, after), expected);
    }
  });

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

describe("what of Nix's words reaches the user", () => {
  test("deprecation notices, plain or as an internal-json message, and nothing else", () => {
    const notice =
      "warning: '--json' without '--json-format' is deprecated; please specify '--json-format 1' or '--json-format 2'.";
    assert.ok(isDeprecationNotice(notice));
    assert.ok(isDeprecationNotice(`\x1b[35;1mwarning:\x1b[0m 'dump-path' is a deprecated alias for 'store dump-path'`));
    assert.ok(isDeprecationNotice(`@nix ${JSON.stringify({ action: "msg", level: 1, msg: notice })}`));
    assert.ok(!isDeprecationNotice("error: attribute 'deprecated' missing"));
    assert.ok(!isDeprecationNotice("warning: Git tree '/src' is dirty"));
    assert.ok(!isDeprecationNotice(`@nix ${JSON.stringify({ action: "result", id: 1, type: 101, fields: [notice] })}`));
  });

  test("a lock's account of itself is a detail, as each Nix prints it; other warnings and errors are shown", () => {
    const recorded = [
      // Nix 2.8
      "warning: creating lock file '/w/vm/flake.lock'",
      // Nix 2.26
      "warning: creating lock file '\"/w/vm/flake.lock\"': ",
      "• Added input 'nixos-flake':",
      "    'path:/w/vendor/nixos-flake?lastModified=1796408922&narHash=sha256-Y/bo%3D' (2026-12-04)",
      "• Added input 'nixpkgs':",
      "    follows 'nixos-flake/nixpkgs'",
      "warning: Git tree '/src/xfsprogs' is dirty",
      // Nix 2.34, updating
      'warning: updating lock file "/w/vm/flake.lock":',
      "• Updated input 'xfsprogs-src':",
      "    'path:/src/xfsprogs?narHash=sha256-a' (2026-12-04)",
      "  → 'path:/src/xfsprogs?narHash=sha256-b' (2026-12-05)",
      "",
      "error: getting status of '/src/gone': No such file or directory",
    ];
    const shown: string[] = [];
    const details: string[] = [];
    const log = {
      ...streamLogger({ write: () => {} }),
      info: (m: string) => shown.push(m),
      detail: (m: string) => details.push(m),
    };
    const handle = lockOutput(log);
    for (const line of recorded) handle(line);
    assert.deepEqual(shown, [
      "warning: Git tree '/src/xfsprogs' is dirty",
      "error: getting status of '/src/gone': No such file or directory",
    ]);
    assert.equal(details.length, recorded.length - 2);
  });

  test("what a lock changed, in one line", () => {
    const lock = (inputs: Record<string, string | string[]>, locked: Record<string, unknown> = {}) => ({
      nodes: {
        root: { inputs },
        ...Object.fromEntries(Object.entries(locked).map(([node, value]) => [node, { locked: value }])),
      },
      root: "root",
      version: 7,
    });
    const first = lock(
      { "nixos-flake": "nixos-flake", nixpkgs: ["nixos-flake", "nixpkgs"] },
      { "nixos-flake": { narHash: "sha256-a" } },
    );
    assert.equal(lockChanges(null, first), "locked nixos-flake, nixpkgs (follows)");
    assert.equal(lockChanges(first, first), null);
    const withSource = lock(
      { "nixos-flake": "nixos-flake", nixpkgs: ["nixos-flake", "nixpkgs"], "xfsprogs-src": "xfsprogs-src" },
      { "nixos-flake": { narHash: "sha256-b" }, "xfsprogs-src": { narHash: "sha256-c" } },
    );
    assert.equal(lockChanges(first, withSource), "locked xfsprogs-src; updated nixos-flake");
    assert.equal(lockChanges(withSource, first), "updated nixos-flake; removed xfsprogs-src");
    assert.equal(lockChanges("not a lock", first), "locked nixos-flake, nixpkgs (follows)");
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

describe("internal-json records no Nix has sent yet", () => {
  const invented = [
    '@nix {"action":"start","id":1,"level":0,"parent":0,"text":"","type":104}',
    // Activity and result types of newer Nix and Determinate Nix (112, 113, 110) and invented ones.
    '@nix {"action":"start","id":2,"level":3,"parent":0,"text":"fetching tree","type":112,"fields":[{"url":"x"},[1,2],true,null]}',
    '@nix {"action":"start","id":3,"level":4,"parent":0,"text":"","type":4242,"fields":["a",1]}',
    '@nix {"action":"result","id":2,"type":110,"fields":[{"nested":{"deep":1}}]}',
    '@nix {"action":"result","id":1,"type":199,"fields":["9223372036854775808"]}',
    // Known types with fields of shapes never seen: a build whose derivation is an object, a phase that is a list.
    '@nix {"action":"start","id":5,"level":3,"parent":1,"text":"building","type":105,"fields":[{"drv":"/nix/store/x.drv"}]}',
    '@nix {"action":"result","id":5,"type":104,"fields":[["buildPhase"]]}',
    '@nix {"action":"result","id":1,"type":105,"fields":[{"done":1},"2",null,false]}',
    '@nix {"action":"result","id":1,"type":106,"fields":[{"t":1},3]}',
    // Invented actions and a message whose text is no string.
    '@nix {"action":"setStatus","id":1,"status":{"phase":"x"}}',
    '@nix {"action":"progress","fields":[1,2]}',
    '@nix {"action":"msg","level":1,"msg":{"text":"x"}}',
    '@nix {"action":"msg","level":3,"msg":"building \\u001b]8;;https://nixos.org\\u001b\\\\a link\\u001b]8;;\\u001b\\\\ in colour"}',
    '@nix {"action":"stop","id":{"weird":1}}',
    '@nix {"action":"stop","id":5}',
    '@nix {"action":"stop","id":2}',
    '@nix {"action":"stop","id":1}',
    "@nix null",
    "@nix []",
  ];

  test("are read as nothing to show or count, never as a line of the screen", () => {
    assert.equal(parseLogLine(invented[9] as string).action, "unknown");
    const start = parseLogLine(invented[1] as string);
    assert.ok(start.action === "start");
    assert.deepEqual(start.fields, [null, null, null, null]);
    assert.equal(count(null), null);
    assert.equal(count(""), null);
    const progress = new BuildProgress(() => 0, { chatter: true });
    const shown = invented.flatMap((line) => progress.handle(line));
    assert.deepEqual(shown, ["fetching tree", "building", "building a link in colour"]);
    const snapshot = progress.snapshot();
    assert.equal(snapshot.toBuild, 2);
    assert.deepEqual(progress.built, []);
  });

  test("the display of a stream full of them: every line readable", () => {
    for (const terminal of [false, true]) {
      const written: string[] = [];
      const log = streamLogger(
        { write: (t: string) => written.push(t), isTTY: terminal, columns: 80, rows: 24 },
        { verbosity: "normal" },
      );
      let clock = 0;
      const progress = new BuildProgress(() => clock);
      const reporter = new ProgressReporter(progress, log, { now: () => clock });
      for (const line of invented) {
        clock += 500;
        reporter.line(line);
      }
      reporter.finish("succeeded");
      const text = written.join("");
      assert.doesNotMatch(text, /@nix|\[object|undefined|NaN|\{"|\x1b\]/, text);
      assert.match(text, /nothing to build or fetch|built/);
    }
  });
});
