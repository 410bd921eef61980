// "Did you mean" for a misspelt name (lib/core/suggest.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { closestName, didYouMean } from "../../f/nix/lib/core/suggest.ts";

describe("did you mean", () => {
  test("suggests a close name, and none for a far one", () => {
    assert.equal(closestName("xfsprog", ["fio", "xfsprogs", "xfstests"]), "xfsprogs");
    assert.equal(closestName("DEVLE", ["devel", "build-tools"]), "devel");
    assert.equal(closestName("gaming", ["devel", "build-tools", "monitoring"]), null);
    assert.equal(didYouMean("vm_nmae", ["vm_name", "user_name"]), '; did you mean "vm_name"?');
    assert.equal(didYouMean("zzz", ["vm_name"]), "");
  });
});
