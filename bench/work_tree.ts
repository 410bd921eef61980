// A developer's checkout as an override: two tracked files and 400 MB of
// untracked build output under build/. Taken whole (`path`, the baseline:
// what a directory was before git work trees were taken as git takes them)
// beside taken as git takes it (`git`: its tracked files, by a snapshot
// commit): lock+build time and store growth, for the first build and after
// a rebuild of one object in build/. Store growth counts the paths the run
// added to the store: the source and what was built from it.
// Run: npx tsx bench/work_tree.ts   (NIX_BIN picks the Nix; default /usr/bin)
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { OverrideInput } from "../f/nix/lib/config/model.ts";
import { formatBytes } from "../f/nix/lib/core/format.ts";
import { nixSync, TEST_NIX_CONFIG, type TestNix, testNixes } from "../tests/helpers/nix.ts";
import { captureLog, vmSteps } from "../tests/helpers/steps.ts";
import { createWorkbench } from "../tests/helpers/workbench.ts";
import { table } from "./stats.ts";

const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 400);
const OBJECT_BYTES = 1024 * 1024;

const nixes = testNixes();
const found = nixes.find((n) => n.bin === (process.env.NIX_BIN ?? "/usr/bin")) ?? nixes[0];
if (!found) throw new Error("no nix");
const nix: TestNix = found;
const wb = createWorkbench(nix);

/** The checkout: a commit of two files, an edit not committed yet, and the objects a host build left in build/. */
function checkout(): string {
  const dir = join(wb.root, "xfsprogs");
  mkdirSync(join(dir, "build"), { recursive: true });
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", dir, "-c", "user.name=bench", "-c", "user.email=bench@nixos-closure.invalid", ...args]);
  git("init", "-q");
  writeFileSync(join(dir, "Makefile"), "all:\n\tcc -o build/xfs_io io.c\n");
  writeFileSync(join(dir, ".gitignore"), "build/\n");
  writeFileSync(join(dir, "io.c"), "int main(void) { return 0; }\n");
  git("add", "Makefile", "io.c", ".gitignore");
  git("commit", "-qm", "xfsprogs");
  writeFileSync(join(dir, "io.c"), `/* ${process.pid}-${Date.now()} */\nint main(void) { return 0; }\n`);
  for (let i = 0; i < OBJECTS; i++) writeFileSync(join(dir, "build", `obj-${i}.o`), randomBytes(OBJECT_BYTES));
  return dir;
}

function storePaths(): Set<string> {
  return new Set(readdirSync("/nix/store").map((name) => `/nix/store/${name}`));
}

interface Figures {
  seconds: number;
  growth: number;
  added: string[];
}

/** render (outside the timing: it asks Nix nothing), then lock and build, timed; the store paths they added. */
async function run(vm: string, override: OverrideInput): Promise<Figures> {
  const steps = vmSteps(wb, { log: captureLog(null, "quiet"), progress: "off" });
  const rendered = await steps.render({ vm_name: vm, profiles: [], test_suites: ["fstests"], overrides: [override] });
  const before = storePaths();
  const started = performance.now();
  await steps.lock(rendered.config_dir);
  const built = await steps.build(rendered.config_dir);
  const seconds = (performance.now() - started) / 1000;
  const closure = nixSync(nix, ["path-info", "--recursive", built.toplevel]).trim().split("\n");
  const ours = new Set([...closure, ...built.overrides.map((o) => o.source)]);
  const added = [...storePaths()].filter((path) => !before.has(path) && ours.has(path));
  const sizes = added.length === 0 ? {} : JSON.parse(nixSync(nix, ["path-info", "--json", ...added]));
  const narSizes: number[] = Array.isArray(sizes)
    ? sizes.map((info: { narSize: number }) => info.narSize)
    : Object.values(sizes as Record<string, { narSize: number }>).map((info) => info.narSize);
  return { seconds, growth: narSizes.reduce((a, b) => a + b, 0), added };
}

const src = checkout();
console.log(`${nix.version}: a checkout of 2 tracked files and ${OBJECTS} untracked objects of 1 MiB under build/`);
const kinds = ["path", "git"] as const;
const rows: string[][] = [];
const added: string[] = [];
try {
  const first: Figures[] = [];
  for (const kind of kinds) first.push(await run(`bench-${kind}`, { pkg: "xfsprogs", src, kind }));
  // The host rebuilds one object.
  writeFileSync(join(src, "build", "obj-0.o"), randomBytes(OBJECT_BYTES));
  const again: Figures[] = [];
  for (const kind of kinds) again.push(await run(`bench-${kind}`, { pkg: "xfsprogs", src, kind }));
  kinds.forEach((kind, i) => {
    const [a, b] = [first[i] as Figures, again[i] as Figures];
    added.push(...a.added, ...b.added);
    rows.push([
      kind === "path" ? "path (baseline)" : "git",
      `${a.seconds.toFixed(2)} s`,
      formatBytes(a.growth),
      `${b.seconds.toFixed(2)} s`,
      formatBytes(b.growth),
    ]);
  });
  table(["kind", "first: lock+build", "store growth", "one object rebuilt: lock+build", "store growth"], rows);
} finally {
  wb.cleanup();
  // What the bench added is garbage now: its result links are gone (Nix deletes only paths nothing holds).
  if (added.length > 0) {
    try {
      execFileSync(join(nix.bin, "nix-store"), ["--delete", ...added], {
        stdio: "ignore",
        env: { ...process.env, NIX_CONFIG: TEST_NIX_CONFIG },
      });
    } catch {}
  }
}
