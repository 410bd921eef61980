// Beyond one machine, with the real nix: binary caches, remote builders,
// delivering the closure, and several workers on one host.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../cli/flow.ts";
import { InputError, NixError } from "../../f/nix/lib/core/errors.ts";
import type { NixSettingsInput } from "../../f/nix/lib/nix/settings.ts";
import { main as lockConfigStep } from "../../f/nix/lock_config.ts";
import { nixSync, TEST_NIX_CONFIG, testNixes } from "../helpers/nix.ts";
import { asWorker, vmSteps, within } from "../helpers/steps.ts";
import { createWorkbench, useWorkbench } from "../helpers/workbench.ts";

for (const nix of testNixes()) {
  describe(`caches, builders and delivery with ${nix.version}`, () => {
    const bench = useWorkbench(nix);
    const build = (dir: string, group: NixSettingsInput = {}) => vmSteps(bench(), { nix: group }).build(dir);
    let salt = 0;

    /** A config dir whose system is new to the store: the library's overlay gets a name of this run's own. */
    async function freshConfig(vm: string): Promise<string> {
      const flake = join(bench().libraryDir, "flake.nix");
      const unique = `kdevops-tools-0.1-${process.pid}-${Date.now()}-${++salt}`;
      writeFileSync(flake, readFileSync(flake, "utf8").replace(/kdevops-tools-0\.1[^"]*"/, `${unique}"`));
      const steps = vmSteps(bench());
      const r = await steps.render({ vm_name: vm, profiles: [], test_suites: [] });
      await steps.lock(r.config_dir, true);
      return r.config_dir;
    }

    test("a signed file:// cache as a substituter: a store without the paths fetches them instead of building", async () => {
      const key = join(bench().root, "cache.sec");
      writeFileSync(key, nixSync(nix, ["key", "generate-secret", "--key-name", "test-cache-1"]));
      const publicKey = nixSync(nix, ["key", "convert-secret-to-public"], { input: readFileSync(key, "utf8") }).trim();
      const cache = join(bench().root, "cache");
      const dir = await freshConfig("cache-vm");
      // The operator's signing key (nix.conf), not the input's: paths built here are signed as they are made.
      const signing = { NIX_CONFIG: `${TEST_NIX_CONFIG}\nsecret-key-files = ${key}` };
      const first = await vmSteps(bench(), { nix: { publish_to: [`file://${cache}`] }, env: signing }).build(dir);
      assert.ok(first.built.length >= 3, "the first build builds");
      assert.equal(first.published[0]?.paths, first.closure.paths, "every path went to the empty cache");

      // The paths that depend on this run's own package leave the store: remove the root, then collect exactly them.
      const ownOutputs = nixSync(nix, ["path-info", "--recursive", first.toplevel])
        .trim()
        .split("\n")
        .filter((p) => /-(kdevops-tools-0\.1-|system-path$|nixos-system-cache-vm)/.test(p));
      rmSync(join(dir, "result"));
      nixSync(nix, ["store", "delete", ...ownOutputs]);
      for (const path of ownOutputs) assert.equal(existsSync(path), false, `${path} left the store`);

      const withKeys = { substituters: [`file://${cache}`], trusted_public_keys: [publicKey] };
      await assert.rejects(
        async () => build(dir, withKeys),
        /NIXOS_CLOSURE_ALLOW_INPUT_KEYS=1/,
        "keys from the input only when the operator allows them",
      );
      const second = await vmSteps(bench(), { nix: withKeys, env: { NIXOS_CLOSURE_ALLOW_INPUT_KEYS: "1" } }).build(dir);
      assert.equal(second.toplevel, first.toplevel);
      assert.deepEqual(second.built, [], "nothing built");
      for (const path of ownOutputs) assert.ok(second.substituted.includes(path), `${path} was substituted`);
      assert.ok(existsSync(second.init));
    });

    test("publish_to a file:// cache and a local?root= store; the delivered paths verify", async () => {
      const dir = await freshConfig("publish-vm");
      const cache = join(bench().root, "published-cache");
      const store = join(bench().root, "published-root");
      const b = await build(dir, { publish_to: [`file://${cache}`, `local?root=${store}`] });
      assert.deepEqual(
        b.published.map((p) => p.uri),
        [`file://${cache}`, `local?root=${store}`],
      );
      for (const p of b.published) {
        assert.equal(p.paths, b.closure.paths);
        assert.equal(p.nar_size, b.closure.nar_size);
      }
      const closure = nixSync(nix, ["path-info", "--recursive", b.toplevel]).trim().split("\n").sort();
      assert.deepEqual(
        nixSync(nix, ["path-info", "--store", `local?root=${store}`, "--all"])
          .trim()
          .split("\n")
          .sort(),
        closure,
      );
      const verifyRoot = nixSync(nix, ["store", "verify", "--no-trust", "--store", `local?root=${store}`, "--all"]);
      assert.doesNotMatch(verifyRoot, /corrupt|invalid|modified/i);
      const verifyCache = nixSync(nix, [
        "store",
        "verify",
        "--no-trust",
        "--store",
        `file://${cache}`,
        "--recursive",
        b.toplevel,
      ]);
      assert.doesNotMatch(verifyCache, /corrupt|invalid|modified/i);
      // Delivering again sends nothing: the destinations have every path.
      const again = await build(dir, { publish_to: [`file://${cache}`] });
      assert.deepEqual(again.published, [{ uri: `file://${cache}`, paths: 0, nar_size: 0 }]);
    });

    test("a failing destination fails the step with its URI and Nix's words; the build and result stay", async () => {
      const dir = await freshConfig("fail-vm");
      const uri = "file:///proc/nixos-closure-cache";
      await assert.rejects(build(dir, { publish_to: [uri] }), (e: Error) => {
        assert.ok(e instanceof NixError, String(e));
        assert.match(e.message, /delivering the closure to file:\/\/\/proc\/nixos-closure-cache failed/);
        assert.match(e.command, /nix .*copy --no-check-sigs --to file:\/\/\/proc\/nixos-closure-cache/);
        assert.match(e.nixMessage, /error/);
        return true;
      });
      const toplevel = readlinkSync(join(dir, "result"));
      assert.ok(existsSync(join(toplevel, "init")), "the local build is intact");
    });

    test("an unreachable remote builder: Nix builds locally, and the step says so", async () => {
      const dir = await freshConfig("builder-vm");
      const builder = "ssh://nobody@127.0.0.2";
      const b = await build(dir, { builders: `${builder} x86_64-linux`, options: { "connect-timeout": 3 } });
      assert.deepEqual(b.unreachable_builders, [builder]);
      assert.ok(b.built.length > 0, "built locally instead");
    });

    test("settings that try to inject a flag are refused at the step's boundary, before Nix runs", async () => {
      const r = await vmSteps(bench()).render({ vm_name: "inject-vm", profiles: [], test_suites: [] });
      await assert.rejects(
        asWorker(bench(), () => lockConfigStep(r.config_dir, false, { options: { fallback: "false --impure" } })),
        InputError,
      );
      assert.equal(existsSync(join(r.config_dir, "flake.lock")), false, "nothing ran");
    });
  });
}

const [first] = testNixes();
describe("many workers on one host", () => {
  test("the same VM on two worker slots builds concurrently, in separate config dirs", async () => {
    assert.ok(first);
    const wb = createWorkbench(first);
    const children: ReturnType<typeof spawn>[] = [];
    try {
      const run = (index: string) =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(
            process.execPath,
            [join(ROOT, "dist", "nixos-closure.cjs"), "build", "--vm-name", "shared", "--json"],
            {
              env: { ...wb.env, WORKER_INDEX: index },
            },
          );
          children.push(child);
          let stdout = "";
          let stderr = "";
          child.stdout.on("data", (d) => (stdout += d));
          child.stderr.on("data", (d) => (stderr += d));
          child.on("close", (code) => resolve({ code, stdout, stderr }));
        });
      const [a, b] = await within(300_000, "both CLI builds", Promise.all([run("0"), run("1")]), () => {
        for (const child of children) child.kill("SIGKILL");
      });
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const ra = JSON.parse(a.stdout);
      const rb = JSON.parse(b.stdout);
      assert.equal(ra.config_dir, join(wb.workersDir, "0", "nix", "shared"));
      assert.equal(rb.config_dir, join(wb.workersDir, "1", "nix", "shared"));
      assert.equal(ra.toplevel, rb.toplevel, "the same system, built once or twice, is the same path");
      assert.equal(readlinkSync(join(ra.config_dir, "result")), ra.toplevel);
      assert.equal(readlinkSync(join(rb.config_dir, "result")), rb.toplevel);
      execFileSync(join(first.bin, "nix"), [
        "--extra-experimental-features",
        "nix-command",
        "store",
        "verify",
        "--no-trust",
        ra.toplevel,
      ]);
    } finally {
      wb.cleanup();
    }
  });
});
