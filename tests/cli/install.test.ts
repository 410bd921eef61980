// The package as a user installs it: from a checkout with only the bundle's
// build tools (`npm ci --omit=dev`, then `npm link`), with `npm install -g` of
// a checkout where nothing was installed, or packed and installed from the
// tarball; each time into a prefix of its own, and run from another
// directory with no TypeScript loader. The developers' tools (the
// devDependencies) are never installed. No Nix needed.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { createWorkbench } from "../helpers/workbench.ts";

describe("npm install -g of the packed package", () => {
  let work = "";
  let command = "";
  before(() => {
    work = mkdtempSync(join(tmpdir(), "nixos-closure-install-"));
    // dist/ is built already (npm ci's prepare, or scripts/test.sh): pack what is there.
    execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", work], { cwd: ROOT, stdio: "pipe", timeout: 120_000 });
    const tarball = readdirSync(work).find((name) => name.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote a tarball");
    const prefix = join(work, "prefix");
    // The bundle needs nothing; npm still installs the build tools it was made with (the dependencies).
    execFileSync("npm", ["install", "--global", "--prefer-offline", "--prefix", prefix, join(work, tarball)], {
      cwd: work,
      stdio: "pipe",
      timeout: 120_000,
    });
    command = join(prefix, "bin", "nixos-closure");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test("the installed command runs from any directory: --version, --help", () => {
    const elsewhere = join(work, "elsewhere");
    mkdirSync(elsewhere);
    const version = spawnSync(command, ["--version"], { cwd: elsewhere, encoding: "utf8", timeout: 30_000 });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
    const help = spawnSync(command, ["build", "--help"], { cwd: elsewhere, encoding: "utf8", timeout: 30_000 });
    assert.match(help.stdout, /--vm-name <name>/);
  });

  test("it carries the flow and its steps: render writes a config dir", () => {
    const wb = createWorkbench(null);
    try {
      const run = spawnSync(command, ["render", "--vm-name", "installed", "--json"], {
        cwd: work,
        encoding: "utf8",
        env: wb.env,
        timeout: 30_000,
      });
      assert.equal(run.status, 0, run.stderr);
      const configDir = JSON.parse(run.stdout).config_dir;
      assert.equal(configDir, join(wb.workersDir, "0", "nix", "installed"));
      assert.ok(existsSync(join(configDir, "default.nix")));
    } finally {
      wb.cleanup();
    }
  });
});

/** A checkout as git has it, in `work`: the tracked files of this working tree, no node_modules, no dist. */
function freshCheckout(work: string): string {
  const checkout = join(work, "nixos-closure");
  const tracked = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0");
  for (const file of tracked.filter((f) => f !== "" && existsSync(join(ROOT, f)))) {
    mkdirSync(dirname(join(checkout, file)), { recursive: true });
    cpSync(join(ROOT, file), join(checkout, file));
  }
  assert.equal(existsSync(join(checkout, "dist")), false);
  return checkout;
}

/** The packages installed in a checkout: only the dependencies (and esbuild's binary for this platform), no developer's tool. */
function assertOnlyBuildTools(checkout: string): void {
  const manifest = JSON.parse(readFileSync(join(checkout, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const installed = readdirSync(join(checkout, "node_modules")).filter((name) => !name.startsWith("."));
  assert.deepEqual(installed.sort(), [...Object.keys(manifest.dependencies), "@esbuild"].sort());
  assert.deepEqual(readdirSync(join(checkout, "node_modules", "@esbuild")), [`${process.platform}-${process.arch}`]);
  for (const tool of Object.keys(manifest.devDependencies)) assert.ok(!installed.includes(tool.split("/")[0] as string), tool);
}

describe("a user's install of a checkout: npm ci --omit=dev && npm link", () => {
  test("fetches only the bundle's build tools, bundles, and links a command that runs from elsewhere", () => {
    const work = mkdtempSync(join(tmpdir(), "nixos-closure-user-"));
    try {
      const checkout = freshCheckout(work);
      // From npm's cache when it has the packages (it does after this repository's npm ci).
      const env = { ...process.env, npm_config_prefer_offline: "true", npm_config_prefix: join(work, "prefix") };
      for (const args of [["ci", "--omit=dev"], ["link"]]) {
        execFileSync("npm", [...args, "--no-audit", "--no-fund"], { cwd: checkout, stdio: "pipe", env, timeout: 300_000 });
      }
      assertOnlyBuildTools(checkout);
      const run = spawnSync(join(work, "prefix", "bin", "nixos-closure"), ["--version"], {
        cwd: work,
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout.trim(), JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("npm install -g of a checkout, with nothing installed or built in it", () => {
  test("prepare installs the bundle's build tools (only they) into the checkout, bundles, and the command runs from elsewhere", () => {
    const work = mkdtempSync(join(tmpdir(), "nixos-closure-checkout-"));
    try {
      const checkout = freshCheckout(work);
      // A checkout built before the bundle was CommonJS, with a link made then (npm link) to dist/nixos-closure.js.
      mkdirSync(join(checkout, "dist"));
      writeFileSync(join(checkout, "dist", "nixos-closure.js"), 'console.log("the former bundle");\n');
      const prefix = join(work, "prefix");
      execFileSync("npm", ["install", "--global", "--prefix", prefix, checkout], {
        cwd: work,
        stdio: "pipe",
        // From npm's cache when it has the packages (it does after this repository's npm ci).
        env: { ...process.env, npm_config_prefer_offline: "true" },
        timeout: 300_000,
      });
      const run = spawnSync(join(prefix, "bin", "nixos-closure"), ["--version"], {
        cwd: work,
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout.trim(), JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
      assertOnlyBuildTools(checkout);
      const former = spawnSync(process.execPath, [join(checkout, "dist", "nixos-closure.js"), "--version"], { encoding: "utf8" });
      assert.equal(former.stdout, run.stdout, "a link to the former bundle runs the new one");
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
