// Bundles the CLI into one JavaScript file, dist/nixos-closure.cjs: the
// TypeScript of cli/ and f/nix/ and the few packages it uses, so the command
// starts with no TypeScript loader and needs no dependency installed. Runs
// as `npm run build`, and as npm's `prepare` (npm ci, npm install, npm pack).
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { build, parse } = await buildTools();

/**
 * esbuild and yaml: with commander (which the bundle carries), the package's
 * dependencies, the only packages a user's install fetches (`npm ci
 * --omit=dev`, 13 MB); the developers' tools are devDependencies (`npm ci`).
 * `npm install -g <checkout>` runs this as prepare in a checkout where
 * nothing was installed: the dependencies are installed there first (from
 * package-lock.json, without the devDependencies), then this runs again.
 */
async function buildTools() {
  try {
    return { build: (await import("esbuild")).build, parse: (await import("yaml")).parse };
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || process.env.NIXOS_CLOSURE_TOOLS_INSTALLED) throw error;
  }
  console.error("nixos-closure: installing the bundle's build tools into this checkout (npm ci --omit=dev) to build the command");
  // Into this checkout, not the global prefix a `npm install -g` is installing into, and without the
  // global install's --allow-scripts (which npm refuses in a project's own install) or its choice of
  // what to include.
  const env = { ...process.env, NIXOS_CLOSURE_TOOLS_INSTALLED: "1" };
  for (const name of Object.keys(env))
    if (/^npm_config_(global|prefix|location|allow[-_]scripts|include|omit)$/i.test(name)) delete env[name];
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ["npm"];
  const args = ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"];
  execFileSync(npm[0], [...npm.slice(1), ...args], { cwd: root, stdio: "inherit", env });
  execFileSync(process.execPath, [fileURLToPath(import.meta.url)], { stdio: "inherit", env });
  process.exit(0);
}
const outfile = join(root, "dist", "nixos-closure.cjs");

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
  // CommonJS: Node loads it without its ES module loader, about 10 ms sooner at every start.
  format: "cjs",
  target: "node20",
  banner: { js: "#!/usr/bin/env node" },
  // Smaller to parse at every start; the names stay readable in stack traces of our own code.
  minifyWhitespace: true,
  minifySyntax: true,
  define: {
    __WORKSPACE_YAML__: JSON.stringify(workspaceYaml),
    "import.meta.dirname": "__dirname",
    "import.meta.url": "__filename",
  },
  logLevel: "warning",
});
chmodSync(outfile, 0o755);
// The bundle was dist/nixos-closure.js: a link made to it then (npm link) runs the new one.
const formerBundle = join(root, "dist", "nixos-closure.js");
if (existsSync(formerBundle))
  writeFileSync(formerBundle, '#!/usr/bin/env node\nimport "./nixos-closure.cjs";\n', { mode: 0o755 });
