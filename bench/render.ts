// Pure rendering speed: validating and rendering a full-featured config
// (every option at once) against the budget of 10 ms, beside the shell
// equivalent of the template step alone (`sed` over the template).
// Run: npx tsx bench/render.ts
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { composeGuest } from "../f/nix/lib/config/guest.ts";
import { renderDefault, renderFlake } from "../f/nix/lib/config/render.ts";
import { GOLDEN_CASES, LIBRARY, TEMPLATE } from "../tests/helpers/golden_cases.ts";
import { median, ms, percentile, table } from "./stats.ts";

const BUDGET_MS = 10;
const found = GOLDEN_CASES.find((c) => c.name === "everything");
if (!found) throw new Error("golden case 'everything' is missing");
const everything = found;
const template = readFileSync(TEMPLATE, "utf8");

function renderOnce(): number {
  const start = performance.now();
  const guest = composeGuest(everything.input, everything.context);
  renderFlake(template, TEMPLATE, LIBRARY, guest.overrides);
  renderDefault(guest);
  return performance.now() - start;
}

for (let i = 0; i < 200; i++) renderOnce(); // warm up the JIT
const ours = Array.from({ length: 2000 }, renderOnce);

const sed = Array.from({ length: 50 }, () => {
  const start = performance.now();
  execFileSync("sed", [`s|path:/path/to/nixos-flake|path:${LIBRARY}|`, TEMPLATE]);
  return performance.now() - start;
});

table(
  ["what", "median", "p99", "budget"],
  [
    [
      "render_config, full-featured config (validate + flake.nix + default.nix)",
      ms(median(ours)),
      ms(percentile(ours, 99)),
      ms(BUDGET_MS),
    ],
    ["baseline: sed over the template (flake.nix only, one process)", ms(median(sed)), ms(percentile(sed, 99)), "-"],
  ],
);
const verdict = percentile(ours, 99) < BUDGET_MS ? "within" : "OVER";
console.log(`\nrender p99 ${ms(percentile(ours, 99))}: ${verdict} the ${BUDGET_MS} ms budget`);
if (verdict === "OVER") process.exitCode = 1;
