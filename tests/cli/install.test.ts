// The package as a user installs it: packed, installed into a prefix of its
// own with `npm install -g --prefix`, and run from another directory, with no
// TypeScript loader and no dependency to fetch. No Nix needed.
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
    execFileSync("npm", ["install", "--global", "--offline", "--prefix", prefix, join(work, tarball)], {
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

describe("npm install -g of a checkout, with nothing installed or built in it", () => {
  test("prepare installs the bundler into the checkout, bundles, and the command runs from elsewhere", () => {
    const work = mkdtempSync(join(tmpdir(), "nixos-closure-checkout-"));
    try {
      // The checkout as git has it: the tracked files of this working tree, no node_modules, no dist.
      const checkout = join(work, "nixos-closure");
      const tracked = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0");
      for (const file of tracked.filter((f) => f !== "" && existsSync(join(ROOT, f)))) {
        mkdirSync(dirname(join(checkout, file)), { recursive: true });
        cpSync(join(ROOT, file), join(checkout, file));
      }
      assert.equal(existsSync(join(checkout, "dist")), false);
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
      const former = spawnSync(process.execPath, [join(checkout, "dist", "nixos-closure.js"), "--version"], { encoding: "utf8" });
      assert.equal(former.stdout, run.stdout, "a link to the former bundle runs the new one");
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
