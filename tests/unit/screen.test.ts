// What the housekeeping commands put on the screen: a closure diff in words,
// and `list`'s table fitted to the window.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatVms } from "../../cli/output.ts";
import { formatClosureDiff } from "../../f/nix/lib/build/report.ts";
import type { VmInfo } from "../../f/nix/lib/steps/vms.ts";

const path = (hash: string, name: string) => `/nix/store/${hash.repeat(32)}-${name}`;

describe("a closure diff in words", () => {
  test("added, removed, a version change and a size change are said in words, not Nix's ∅ and ε", () => {
    const lines = formatClosureDiff("/nix/store/old", "/nix/store/new", {
      added: [],
      removed: [],
      added_size: 0,
      removed_size: 0,
      changes: [
        { name: "gcc", from: [], to: ["14.2"], size_delta: 51200 * 1024 },
        { name: "kdevops-tools", from: ["0.1"], to: [], size_delta: null },
        { name: "fio", from: ["3.36"], to: ["3.37"], size_delta: -8704 },
        { name: "system-path", from: [], to: [], size_delta: 12288 },
        { name: "unversioned", from: [], to: ["ε"], size_delta: 1024 },
      ],
    });
    assert.deepEqual(lines.slice(2), [
      "  gcc: added 14.2 (50.0 MiB)",
      "  kdevops-tools: removed 0.1",
      "  fio: 3.36 → 3.37, 8.5 KiB less",
      "  system-path: 12.0 KiB more",
      "  unversioned: added (1.0 KiB)",
    ]);
    assert.ok(!lines.join("\n").includes("∅"));
  });

  test("an override's source is named after its package", () => {
    const source = path("s", "source");
    const lines = formatClosureDiff(
      "/nix/store/old",
      "/nix/store/new",
      {
        added: [source],
        removed: [],
        added_size: 1024,
        removed_size: 0,
        changes: [{ name: "source", from: [], to: ["ε"], size_delta: 1024 }],
      },
      10,
      new Map([[source, "xfsprogs"]]),
    );
    assert.deepEqual(lines.slice(2), ["  source of xfsprogs: added (1.0 KiB)", "  added: source of xfsprogs"]);
  });
});

describe("list's table on a terminal", () => {
  const vm = (name: string): VmInfo => ({
    vm_name: name,
    worker: "0",
    config_dir: `/w/0/nix/${name}`,
    state: "built",
    built_at: "2026-12-04T18:32:27.000Z",
    toplevel: path("8", `nixos-system-${name}-26.05.fixture`),
    closure_size: 1234567,
    unique_size: 3171,
    gc_roots: [],
    prepared_roots: [],
    root_dirs: [],
  });
  const vms = [vm("xfs_crc"), vm("xfs_reflink_normapbt")];

  test("whole in a pipe and with -v; short store paths, then fewer columns, to fit a window", () => {
    const whole = formatVms(vms);
    assert.match(whole, /^VM\s+worker\s+state\s+built\s+closure\s+only its own\s+toplevel$/m);
    assert.ok(whole.includes(vms[0]?.toplevel as string));
    for (const columns of [120, 100, 80, 60, 40]) {
      const fitted = formatVms(vms, { columns, fullPaths: false }).split("\n");
      const widest = Math.max(...fitted.map((line) => line.length));
      assert.ok(widest <= Math.max(columns, 33), `${columns} columns: ${widest}\n${fitted.join("\n")}`);
      assert.match(fitted[0] ?? "", /^VM\s+.*state/);
    }
    assert.match(formatVms(vms, { columns: 140, fullPaths: false }), /8888888…-nixos-system-xfs_crc-26\.05\.fixture/);
    assert.doesNotMatch(formatVms(vms, { columns: 60, fullPaths: false }), /toplevel/);
  });
});
