// prepare_root beside `nix copy --to local?root=DIR` and beside `cp -a` of the
// same store paths, in one run, on a synthetic closure of at least 20,000
// files and 200 MB (bench/synthetic-closure.nix). All three write next to
// each other on one filesystem. prepare_root must never be slower than nix copy.
// Then the same closure arriving as a file: prepare_root importing its
// `nix-store --export` file beside `nix copy --from file://` of a binary cache
// holding it (uncompressed, as the export is), both into a root of their own.
// Run: npx tsx bench/prepare_root.ts   (NIX_BIN picks the Nix; default /usr/bin)
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeTree } from "../f/nix/lib/build/root/generations.ts";
import { nixSync, testNixes } from "../tests/helpers/nix.ts";
import { vmSteps } from "../tests/helpers/steps.ts";
import { createWorkbench } from "../tests/helpers/workbench.ts";
import { ms, table } from "./stats.ts";

const nixes = testNixes();
const nix = nixes.find((n) => n.bin === (process.env.NIX_BIN ?? "/usr/bin")) ?? nixes[0];
if (!nix) throw new Error("no nix");
const wb = createWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
const prepareRoot = (configDir: string, toplevel: string, closureFiles: string[] = []) =>
  vmSteps(wb).prepareRoot(configDir, toplevel, "", { closure_files: closureFiles });

const work = mkdtempSync(join(tmpdir(), "bench-prepare-root-"));
const file = join(import.meta.dirname, "synthetic-closure.nix");
console.error("building the synthetic closure (once per run) ...");
const toplevel = nixSync(nix, ["build", "--no-link", "--json", "-f", file, "--argstr", "salt", String(Date.now())]);
const top = JSON.parse(toplevel)[0].outputs.out as string;
const paths = nixSync(nix, ["path-info", "--recursive", top]).trim().split("\n");
const files = Number(execFileSync("sh", ["-c", `find ${paths.join(" ")} -type f | wc -l`], { encoding: "utf8" }).trim());
const bytes = Number(
  execFileSync("du", ["-sbc", ...paths], { encoding: "utf8" })
    .trim()
    .split("\n")
    .at(-1)
    ?.split("\t")[0],
);

function timed(run: () => void | Promise<void>): Promise<number> {
  const start = performance.now();
  return Promise.resolve(run()).then(() => performance.now() - start);
}

// A config dir of the worker's, as prepare_root takes only those.
const configDir = join(wb.workersDir, "0", "nix", "bench-root");
mkdirSync(configDir, { recursive: true });
writeFileSync(join(configDir, "flake.nix"), "{ outputs = { self }: { }; }\n");

const ours = await timed(async () => {
  await prepareRoot(configDir, top);
});
const again = await timed(async () => {
  await prepareRoot(configDir, top);
});
const nixCopyDir = join(work, "nix-copy");
const nixCopy = await timed(() => {
  nixSync(nix, ["copy", "--no-check-sigs", "--to", `local?root=${nixCopyDir}`, top]);
});
const cpDir = join(work, "cp", "nix", "store");
mkdirSync(cpDir, { recursive: true });
const cp = await timed(() => {
  execFileSync("cp", ["-a", ...paths, cpDir]);
});

// The closure as a file, into the root of a small system of its own.
console.error("exporting the closure to a file and to a binary cache ...");
const exportFile = join(work, "closure.export");
const exportFd = openSync(exportFile, "w");
execFileSync(join(nix.bin, "nix-store"), ["--export", ...paths], { stdio: ["ignore", exportFd, "inherit"] });
closeSync(exportFd);
const cache = `file://${join(work, "cache")}?compression=none`;
nixSync(nix, ["copy", "--no-check-sigs", "--to", cache, top]);
const small = nixSync(nix, [
  "build",
  "--no-link",
  "--json",
  "-f",
  file,
  "--argstr",
  "salt",
  `small-${Date.now()}`,
  "--arg",
  "parts",
  "1",
  "--arg",
  "files",
  "1",
]);
const smallTop = JSON.parse(small)[0].outputs.out as string;
const fileConfigDir = join(wb.workersDir, "0", "nix", "bench-file-root");
mkdirSync(fileConfigDir, { recursive: true });
writeFileSync(join(fileConfigDir, "flake.nix"), "{ outputs = { self }: { }; }\n");
const fromFile = await timed(async () => {
  await prepareRoot(fileConfigDir, smallTop, [exportFile]);
});
const fromCacheDir = join(work, "nix-copy-from");
const fromCache = await timed(() => {
  nixSync(nix, ["copy", "--no-check-sigs", "--from", cache, "--to", `local?root=${fromCacheDir}`, top]);
});
removeTree(work);
wb.cleanup();

console.log(`${nix.version}; closure: ${paths.length} store paths, ${files} files, ${(bytes / 1e6).toFixed(0)} MB\n`);
table(
  ["what", "time", "vs nix copy"],
  [
    ["prepare_root, first generation", ms(ours), `${(nixCopy / ours).toFixed(1)}x faster`],
    ["prepare_root, next generation (reuses the previous)", ms(again), `${(nixCopy / again).toFixed(1)}x faster`],
    ["nix copy --to local?root=DIR", ms(nixCopy), "1.0x"],
    ["cp -a of the store paths (no registration)", ms(cp), `${(nixCopy / cp).toFixed(1)}x faster`],
  ],
);
console.log("");
table(
  ["the closure as a file", "time", "vs nix copy --from file://"],
  [
    [
      "prepare_root importing its nix-store --export file",
      ms(fromFile),
      fromFile <= fromCache ? `${(fromCache / fromFile).toFixed(1)}x faster` : `${(fromFile / fromCache).toFixed(1)}x slower`,
    ],
    ["nix copy --from file://CACHE?compression=none --to local?root=DIR", ms(fromCache), "1.0x"],
  ],
);
if (files < 20_000 || bytes < 200e6) throw new Error("the synthetic closure is smaller than asked for");
const slower = ours > nixCopy || again > nixCopy;
console.log(slower ? "\nprepare_root was SLOWER than nix copy" : "\nprepare_root is faster than nix copy");
if (slower) process.exitCode = 1;
