// The boot half's entry points read from a system: boot.json (bootspec v1),
// or init alone when a system has none (lib/build/bootspec.ts).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parseBootspec, readBootInfo } from "../../f/nix/lib/build/bootspec.ts";

describe("bootspec", () => {
  const spec = (v1: object, extra: object = {}) => JSON.stringify({ "org.nixos.bootspec.v1": v1, ...extra });
  test("reads init and initrd, ignoring unknown keys and extensions", () => {
    const text = spec(
      {
        init: "/s/init",
        initrd: "/s/initrd",
        kernel: "/k",
        kernelParams: [],
        label: "l",
        system: "x86_64-linux",
        toplevel: "/s",
        future: 1,
      },
      { "org.nixos.specialisation.v1": {}, "org.example.v9": { x: 1 } },
    );
    assert.deepEqual(parseBootspec(text, "f"), { init: "/s/init", initrd: "/s/initrd" });
  });
  test("initrd may be absent; kernel may be absent", () => {
    assert.deepEqual(parseBootspec(spec({ init: "/s/init", label: "l" }), "f"), { init: "/s/init", initrd: null });
  });
  test("malformed boot.json is a clear error naming the file", () => {
    assert.throws(() => parseBootspec("{not json", "/nix/store/x/boot.json"), /\/nix\/store\/x\/boot\.json is not valid JSON/);
    assert.throws(() => parseBootspec("{}", "/b.json"), /\/b\.json has no "org\.nixos\.bootspec\.v1"/);
    assert.throws(() => parseBootspec(spec({ initrd: "/i" }), "/b.json"), /\/b\.json: .*init is missing/);
    assert.throws(() => parseBootspec(spec({ init: "/i", initrd: 3 }), "/b.json"), /initrd is not a string/);
  });
  test("no boot.json: init of the toplevel, with a warning", () => {
    const dir = mkdtempSync(join(tmpdir(), "bootspec-"));
    try {
      writeFileSync(join(dir, "init"), "#!/bin/sh\n");
      const info = readBootInfo(dir);
      assert.equal(info.init, join(dir, "init"));
      assert.equal(info.initrd, null);
      assert.equal(info.bootJson, null);
      assert.match(info.warnings[0] ?? "", /no boot\.json/);
      rmSync(join(dir, "init"));
      assert.throws(() => readBootInfo(dir), /neither boot\.json nor init/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
