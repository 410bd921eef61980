// Rewrites tests/golden/<case>/{flake.nix,default.nix} from the current
// renderer. Review `git diff tests/golden` before committing: a golden file
// is a statement of what is right, not a record of what the code does.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GOLDEN_CASES, GOLDEN_DIR, renderCase } from "../tests/helpers/golden_cases.ts";

for (const c of GOLDEN_CASES) {
  const { flake, defaultNix } = renderCase(c);
  mkdirSync(join(GOLDEN_DIR, c.name), { recursive: true });
  writeFileSync(join(GOLDEN_DIR, c.name, "flake.nix"), flake);
  writeFileSync(join(GOLDEN_DIR, c.name, "default.nix"), defaultNix);
  console.log(`wrote ${join(GOLDEN_DIR, c.name)}`);
}
