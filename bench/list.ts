// nixos-closure list on a worker slot of 200 VMs (a synthetic worker dir:
// config dirs rendered for real, their result links pointing at systems
// built for real), against the target of 2 s: one nix path-info call for
// all VMs, not one per VM. Beside it, the same Nix call alone.
// Run: npx tsx bench/list.ts   (NIX_BIN picks the Nix; default /usr/bin)
import { cpSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { listVms } from "../f/nix/lib/steps/vms.ts";
import { nixSync, testNixes } from "../tests/helpers/nix.ts";
import { testContext, vmSteps } from "../tests/helpers/steps.ts";
import { createWorkbench } from "../tests/helpers/workbench.ts";
import { median, ms, table } from "./stats.ts";

const VMS = 200;
const TARGET_MS = 2000;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const nixes = testNixes();
const nix = nixes.find((n) => n.bin === (process.env.NIX_BIN ?? "/usr/bin")) ?? nixes[0];
if (!nix) throw new Error("no nix");
const wb = createWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
const steps = vmSteps(wb);
const systems = [
  await steps.renderLockBuild({ vm_name: "seed-a", profiles: ["devel"], test_suites: [] }),
  await steps.renderLockBuild({ vm_name: "seed-b", profiles: ["build-tools"], test_suites: ["fstests"] }),
];
const nixDir = join(wb.workersDir, "0", "nix");
for (let i = 0; i < VMS - systems.length; i++) {
  const seed = systems[i % systems.length];
  if (!seed) throw new Error("no seed");
  const dir = join(nixDir, `vm-${i}`);
  cpSync(seed.config_dir, dir, { recursive: true, verbatimSymlinks: true, filter: (src) => !src.endsWith("/result") });
  symlinkSync(seed.toplevel, join(dir, "result"));
}

const timed = async (run: () => Promise<unknown>) => {
  const start = performance.now();
  await run();
  return performance.now() - start;
};
const listMs: number[] = [];
let count = 0;
for (let i = 0; i < RUNS; i++) listMs.push(await timed(async () => (count = (await listVms(testContext(wb, "list"))).length)));
const nixMs: number[] = [];
for (let i = 0; i < RUNS; i++) {
  nixMs.push(await timed(async () => nixSync(nix, ["path-info", "--json", "--recursive", ...systems.map((s) => s.toplevel)])));
}
wb.cleanup();

console.log(`${nix.version}; ${count} VMs, median of ${RUNS} runs\n`);
table(
  ["what", "time", "target"],
  [
    ["nixos-closure list (all VMs, one nix path-info)", ms(median(listMs)), ms(TARGET_MS)],
    ["nix path-info --json --recursive alone", ms(median(nixMs)), ""],
  ],
);
if (count !== VMS) throw new Error(`listed ${count} VMs, not ${VMS}`);
if (median(listMs) > TARGET_MS) {
  console.log("\nlist is OVER its target");
  process.exitCode = 1;
}
