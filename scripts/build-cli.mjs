// Bundles the CLI into one JavaScript file, dist/nixos-closure.js: the
// TypeScript of cli/ and f/nix/ and the few packages it uses, so the command
// starts with no TypeScript loader and needs no dependency installed. Runs
// as `npm run build`, and as npm's `prepare` (npm ci, npm install, npm pack).
import { chmodSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { parse } from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "dist", "nixos-closure.js");

// The flow and its steps' metadata (f/nix/*.yaml, not the library modules'), parsed now rather than at every
// start (cli/flow.ts reads them from here).
const workspaceYaml = {};
for (const name of readdirSync(join(root, "f"), { recursive: true, encoding: "utf8" })) {
  const step = /^nix\/[a-z_]+\.script\.yaml$/.test(name);
  if (step || name.endsWith("flow.yaml")) {
    const path = join(root, "f", name);
    workspaceYaml[relative(root, path)] = parse(readFileSync(path, "utf8"));
  }
}
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
  // Smaller to parse at every start; the names stay readable in stack traces of our own code.
  minifyWhitespace: true,
  minifySyntax: true,
  define: { __WORKSPACE_YAML__: JSON.stringify(workspaceYaml) },
  logLevel: "warning",
});
chmodSync(outfile, 0o755);
