// Bundles the CLI into one JavaScript file, dist/nixos-closure.js: the
// TypeScript of cli/ and f/nix/ and the few packages it uses, so the command
// starts with no TypeScript loader and needs no dependency installed. Runs
// as `npm run build`, and as npm's `prepare` (npm ci, npm install, npm pack).
import { chmodSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "dist", "nixos-closure.js");
await build({
  entryPoints: [join(root, "cli", "entry.ts")],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Bundled CommonJS packages call require(): give the module one.
  banner: {
    js: '#!/usr/bin/env node\nimport { createRequire as __createRequire } from "node:module";\nconst require = __createRequire(import.meta.url);',
  },
  logLevel: "warning",
});
chmodSync(outfile, 0o755);
