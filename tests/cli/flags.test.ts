// The command line's flags and --input as flow input, without running anything.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { flowInputFromFlags, parseOverride, parseShare } from "../../cli/flow_input.ts";
import { InputError } from "../../f/nix/lib/core/errors.ts";

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
