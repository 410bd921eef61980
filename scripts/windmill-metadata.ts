// Writes (or with --check, verifies) the .script.yaml and .script.lock of
// every workspace script under f/, from Windmill's parser, and
// wmill-lock.yaml, the hashes `wmill sync push` tracks. See
// tools/windmill_metadata.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { currentWmillLock, metadataFor, ROOT, workspaceScripts } from "../tools/windmill_metadata.ts";

const check = process.argv.includes("--check");
let stale = 0;
for (const file of workspaceScripts()) {
  const meta = metadataFor(file);
  for (const [suffix, content] of [
    [".script.yaml", meta.yaml],
    [".script.lock", meta.lock],
  ] as const) {
    const target = join(ROOT, `${meta.path}${suffix}`);
    let current: string | null = null;
    try {
      current = readFileSync(target, "utf8");
    } catch {}
    if (current === content) continue;
    stale++;
    if (check) console.error(`stale: ${meta.path}${suffix} (run npm run windmill:metadata)`);
    else {
      writeFileSync(target, content);
      console.log(`wrote ${meta.path}${suffix}`);
    }
  }
}
// The hashes wmill sync push tracks, from the metadata just written.
const lockFile = join(ROOT, "wmill-lock.yaml");
const lock = currentWmillLock();
let committed: string | null = null;
try {
  committed = readFileSync(lockFile, "utf8");
} catch {}
if (committed !== lock) {
  stale++;
  if (check) console.error("stale: wmill-lock.yaml (run npm run windmill:metadata)");
  else {
    writeFileSync(lockFile, lock);
    console.log("wrote wmill-lock.yaml");
  }
}
if (check && stale > 0) process.exitCode = 1;
