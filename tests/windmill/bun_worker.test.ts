// The flow run step by step under Bun, the way a Windmill worker runs it,
// with the real nix.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { FLOW_FILE, type FlowInput, loadFlow, moduleArgs, ROOT, runFlow } from "../../cli/flow.ts";
import { ED25519 } from "../helpers/golden_cases.ts";
import { testNixes } from "../helpers/nix.ts";
import { createWorkbench, type Workbench } from "../helpers/workbench.ts";
import { BUN, type BunRun, bunExecutor } from "./worker.ts";

const flowYaml = readFileSync(FLOW_FILE, "utf8");
const CLI = join(ROOT, "dist", "nixos-closure.cjs");
const flow = loadFlow();

const [nix] = testNixes();
describe(`the flow under Bun, as a worker runs it (${nix?.version})`, () => {
  let wb: Workbench;
  before(() => {
    assert.ok(nix);
    wb = createWorkbench(nix);
  });
  after(() => wb.cleanup());

  test("render, lock and build run in order; results feed the next step; the flow result carries the outputs", async () => {
    const log: BunRun[] = [];
    const input: FlowInput = {
      guest: {
        vm_name: "bunvm",
        user_name: "john.doe",
        ssh_keys: [ED25519],
        shares: { "/mnt/linux": { tag: "linux", options: ["ro"] }, "": {} },
      },
      closure: { profiles: ["devel", "monitoring"], test_suites: ["fstests"] },
      lock: { update_lock: false },
    };
    const run = await runFlow(flow, input, bunExecutor(wb.env, log));
    assert.equal(log.length, 3, "prepare_root is skipped unless asked for");
    assert.match(execFileSync(BUN, ["--version"], { encoding: "utf8" }), /^1\./);

    const configDir = join(wb.workersDir, "0", "nix", "bunvm");
    assert.equal(run.results.render_config?.config_dir, configDir);
    assert.deepEqual(Object.keys(run.results.render_config ?? {}).sort(), [
      "config_dir",
      "default",
      "flake",
      "kernel_params",
      "nixos_flake",
      "optional_overrides",
      "render_id",
      "vm_name",
    ]);
    assert.deepEqual(Object.keys(run.results.lock_config ?? {}).sort(), ["config_dir", "lock", "src_inputs"]);
    for (const field of ["toplevel", "init", "initrd", "config_dir"])
      assert.ok(typeof run.result[field] === "string", `flow result has ${field}`);
    assert.equal(readlinkSync(join(configDir, "result")), run.result.toplevel);
    assert.equal(run.result.init, `${run.result.toplevel}/init`);

    // Every results.<id>.<field> the flow reads is a field that step returned.
    for (const [, id, field] of flowYaml.matchAll(/results\.(\w+)\.(\w+)/g)) {
      assert.ok(field && field in (run.results[id as string] ?? {}), `results.${id}.${field} is not returned by ${id}`);
    }
    // The job log shows the rendered files and the commands as bash.
    assert.match(log[0]?.stderr ?? "", /----- .*\/bunvm\/default\.nix -----/);
    assert.match(
      log[2]?.stderr ?? "",
      /\+ NO_COLOR=1 .*nix --extra-experimental-features 'nix-command flakes' build 'path:.*bunvm#toplevel' --json --out-link/,
    );
  });

  test("with root.prepare, the fourth step runs and the flow result also carries root_dir and store_dir", async () => {
    const log: BunRun[] = [];
    const input: FlowInput = {
      guest: { vm_name: "bunroot" },
      closure: { profiles: [], test_suites: [] },
      root: { prepare: true },
    };
    const run = await runFlow(flow, input, bunExecutor(wb.env, log));
    assert.equal(log.length, 4);
    const configDir = join(wb.workersDir, "0", "nix", "bunroot");
    assert.equal(run.result.root_dir, join(configDir, "root"));
    assert.equal(run.result.store_dir, join(configDir, "root", "nix", "store"));
    for (const field of ["toplevel", "init", "initrd", "config_dir"])
      assert.ok(typeof run.result[field] === "string", `flow result has ${field}`);
    assert.ok(existsSync(join(String(run.result.store_dir), String(run.result.toplevel).slice("/nix/store/".length))));
  });

  test("the steps under Bun and the CLI share one evaluation record; the system is named at boot", async () => {
    const input = (vm_name: string): FlowInput => ({
      guest: { vm_name, hostname_at_boot: true, home: false },
      closure: { profiles: [], test_suites: ["fstests"] },
    });
    const run = await runFlow(flow, input("bunshare-a"), bunExecutor(wb.env));
    assert.equal(run.result.evaluated, true);
    assert.deepEqual(run.result.kernel_params, ["systemd.hostname=bunshare-a"]);
    assert.deepEqual(run.results.render_config?.kernel_params, ["systemd.hostname=bunshare-a"]);
    const cli = spawnSync(
      process.execPath,
      [
        CLI,
        "build",
        "--vm-name",
        "bunshare-b",
        "--hostname-at-boot",
        "--no-home",
        "--profile",
        "none",
        "--test-suite",
        "fstests",
        "--json",
      ],
      { env: wb.env, encoding: "utf8", timeout: 300_000 },
    );
    assert.equal(cli.status, 0, cli.stderr);
    const result = JSON.parse(cli.stdout.trim().split("\n").at(-1) ?? "{}");
    assert.equal(result.evaluated, false);
    assert.equal(result.evaluated_by, "bunshare-a");
    assert.equal(result.toplevel, run.result.toplevel);
    assert.deepEqual(result.kernel_params, ["systemd.hostname=bunshare-b"]);
  });

  test("two runs of one vm_name interleaved: the run whose render was replaced stops at lock and build", async () => {
    const execute = bunExecutor(wb.env);
    const [render, lock, build] = flow.modules;
    assert.ok(render && lock && build);
    const mine: FlowInput = { guest: { vm_name: "interleaved", ssh_keys: [ED25519], home: false } };
    const theirs: FlowInput = { guest: { vm_name: "interleaved", home: false } };
    const myRender = await execute(render, moduleArgs(render, mine, {}));
    const theirRender = await execute(render, moduleArgs(render, theirs, {}));
    await assert.rejects(
      execute(lock, moduleArgs(lock, mine, { render_config: myRender })),
      /rendered again, with other inputs, by another run/,
    );
    await assert.rejects(
      execute(build, moduleArgs(build, mine, { render_config: myRender })),
      /rendered again, with other inputs, by another run/,
    );
    // The run that rendered last goes on: its system holds its input, not the other's key.
    await execute(lock, moduleArgs(lock, theirs, { render_config: theirRender }));
    const built = await execute(build, moduleArgs(build, theirs, { render_config: theirRender }));
    const evaluated = JSON.parse(readFileSync(join(String(built.toplevel), "etc", "evaluated.json"), "utf8"));
    assert.deepEqual(evaluated.users.root.keys, []);
  });

  test("a bad field anywhere in the flow input stops the flow at render_config, before anything is written", async () => {
    const inputs: [FlowInput, RegExp][] = [
      [
        { guest: { vm_name: "bunbad", vm_nmae: "x" } },
        /guest: "vm_nmae" is not a field of the guest group .*did you mean "vm_name"\?/,
      ],
      [{ guest: { vm_name: "bunbad" }, root: { prepare: "false" } }, /root\.prepare: "false" must be true or false/],
      [{ guest: { vm_name: "bunbad", hostname_at_boot: "yes" } }, /guest\.hostname_at_boot: "yes" must be true or false/],
      [{ guest: { vm_name: "bunbad" }, nix: { options: { "post-build-hook": "/x" } } }, /not a setting the flow input may set/],
    ];
    for (const [input, message] of inputs) {
      const log: BunRun[] = [];
      await assert.rejects(runFlow(flow, input, bunExecutor(wb.env, log)), (e: Error) => message.test(e.message));
      assert.equal(log.length, 1, "render_config was the last step to run");
      assert.equal(existsSync(join(wb.workersDir, "0", "nix", "bunbad")), false, "nothing was written");
    }
  });
});
