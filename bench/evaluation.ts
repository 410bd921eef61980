// Evaluate once, measured where users wait: on a stand-in nixpkgs whose
// evaluation costs seconds (as a real NixOS system's does: 3 s for a minimal
// one, 11 s for a desktop), the CLI beside bare `nix build` of the same
// config dirs, on every Nix of the test suite. Targets:
//   - a no-op rebuild: at most 0.1x a bare `nix build` of the same dir;
//   - 10 VMs differing only in name (hostname_at_boot), one command: at most
//     1.3x one VM's first build;
//   - 3 runs of one config at once (three processes): at most 1.3x one run.
// Each figure is a median of BENCH_RUNS runs (default 3); every "first build"
// is of a config never built before (each case takes a user name of its own).
// "Today" is what the same VMs cost without hostname_at_boot: each its own
// system, evaluated by a bare `nix build`.
// Run: npx tsx bench/evaluation.ts   (BENCH_EVALUATION_WORK sets the weight)
import { execFile, execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { type TestNix, testNixes } from "../tests/helpers/nix.ts";
import { createWorkbench, type Workbench } from "../tests/helpers/workbench.ts";
import { median, table } from "./stats.ts";

const ROOT = resolve(import.meta.dirname, "..");
const CLI = join(ROOT, "dist", "nixos-closure.cjs");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/**
 * Steps of work per evaluation of the stand-in (examples/nixpkgs/nixos/base.nix): about 3 s on Nix 2.26 on
 * this project's 2-core machine, what a minimal real NixOS system costs.
 */
const WORK = Number(process.env.BENCH_EVALUATION_WORK ?? 30_000_000);
const run = promisify(execFile);

/** A VM's input besides its name: nothing to build but the system itself, and a user of the case's own. */
const common = (user: string) => ["--no-home", "--profile", "none", "--test-suite", "none", "--user", user];

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

function bench(nix: TestNix) {
  const wb: Workbench = createWorkbench(nix, {}, { evaluationWork: WORK });
  const env = wb.env;
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { env, maxBuffer: 64 << 20 });
  const dirOf = (vm: string) => join(wb.workersDir, "0", "nix", vm);
  const nixBuild = (vm: string) =>
    run(join(nix.bin, "nix"), ["build", `path:${dirOf(vm)}#toplevel`, "--out-link", join(dirOf(vm), "result")], {
      env,
    });
  /** Renders and locks a VM with the CLI, building nothing (for the bare builds). */
  const prepare = async (vm: string, user: string) => {
    await cli(["render", "--vm-name", vm, ...common(user)]);
    await cli(["lock", "--vm-name", vm]);
  };
  return { wb, cli, nixBuild, prepare };
}

async function measure(nix: TestNix): Promise<string[][]> {
  const { wb, cli, nixBuild, prepare } = bench(nix);
  try {
    const rows: string[][] = [];
    const label = nix.version.replace(/^nix \(Nix\) /, "Nix ");

    // A no-op rebuild: the same VM again, against nix build of its dir.
    await cli(["build", "--vm-name", "noop", ...common("noop")]);
    const ours: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ours.push(await timed(() => cli(["build", "--vm-name", "noop", ...common("noop")])));
      bare.push(await timed(() => nixBuild("noop")));
    }
    const noop = median(ours) / median(bare);
    rows.push([
      label,
      "no-op rebuild",
      seconds(median(ours)),
      `nix build: ${seconds(median(bare))}`,
      `${noop.toFixed(2)}x`,
      "<= 0.1x",
    ]);

    // 10 VMs equal but for their name, one command; one VM's first build; 10 bare builds of name-only VMs.
    const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const firsts: number[] = [];
    const tens: number[] = [];
    const bareTens: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      firsts.push(await timed(() => cli(["build", "--hostname-at-boot", "--vm-name", `one${r}`, ...common(`one${r}`)])));
      const ten = names(`ten${r}-`, 10).flatMap((vm) => ["--vm-name", vm]);
      tens.push(await timed(() => cli(["build", "--hostname-at-boot", ...ten, ...common(`ten${r}`)])));
      const bareNames = names(`bare${r}-`, 10);
      for (const vm of bareNames) await prepare(vm, `bare${r}`);
      bareTens.push(
        await timed(async () => {
          for (const vm of bareNames) await nixBuild(vm);
        }),
      );
    }
    const tenRatio = median(tens) / median(firsts);
    rows.push([
      label,
      "10 VMs, one after another",
      seconds(median(tens)),
      `one VM's first build: ${seconds(median(firsts))}; today, 10 bare nix builds of 10 VMs: ${seconds(median(bareTens))}`,
      `${tenRatio.toFixed(2)}x`,
      "<= 1.3x",
    ]);

    // 3 runs of one config at once (three processes), against one run, and 3 bare builds at once.
    const threes: number[] = [];
    const bareThrees: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const vms = names(`three${r}-`, 3);
      threes.push(
        await timed(() =>
          Promise.all(vms.map((vm) => cli(["build", "--hostname-at-boot", "--vm-name", vm, ...common(`three${r}`)]))),
        ),
      );
      const bareVms = names(`barethree${r}-`, 3);
      for (const vm of bareVms) await prepare(vm, `barethree${r}`);
      bareThrees.push(await timed(() => Promise.all(bareVms.map((vm) => nixBuild(vm)))));
    }
    const threeRatio = median(threes) / median(firsts);
    rows.push([
      label,
      "3 runs of one config at once",
      seconds(median(threes)),
      `one run: ${seconds(median(firsts))}; today, 3 bare nix builds of 3 VMs at once: ${seconds(median(bareThrees))}`,
      `${threeRatio.toFixed(2)}x`,
      "<= 1.3x",
    ]);
    return rows;
  } finally {
    wb.cleanup();
  }
}

execFileSync("npm", ["run", "-s", "build"], { cwd: ROOT, stdio: "inherit" });
console.log(`evaluation weight: ${WORK} steps per evaluation; median of ${RUNS} runs`);
const rows: string[][] = [];
for (const nix of testNixes()) rows.push(...(await measure(nix)));
table(["Nix", "case", "nixos-closure", "baseline", "ratio", "target"], rows);
