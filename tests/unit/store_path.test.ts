// Store paths computed as Nix computes them (lib/nix/store_path.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { sourcePathOf } from "../../f/nix/lib/nix/store_path.ts";

describe("store paths computed as Nix computes them", () => {
  test("a locked input's source path follows from its NAR hash (vectors from nix flake archive)", () => {
    assert.equal(
      sourcePathOf("sha256-k9bnbfYR3ptUofDyEPNDi38aj+m3i+pR6fjGyhtXwhk="),
      "/nix/store/n93l3xg157rfka9zpp9civ5mvibl7bcr-source",
    );
    assert.equal(
      sourcePathOf("sha256-ongl0IBjYlYrOOFqqJh5+M5w4tYMTFvqyaNWYsEjHZ8="),
      "/nix/store/nhsn4ajd8mxi5h0k4nl3sd4j2456gbi6-source",
    );
    assert.equal(sourcePathOf("sha1-deadbeef"), null);
  });
});
