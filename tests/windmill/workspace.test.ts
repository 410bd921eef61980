// The Windmill workspace checked by Windmill's own tools: the flow, each
// script's metadata, the transforms between them. No Nix needed.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, test } from "node:test";
import { WindmillYamlValidator } from "windmill-yaml-validator";
import { parse } from "yaml";
import { FLOW_FILE, type FlowInput, loadFlow, moduleArgs, parameterOrder, ROOT } from "../../cli/flow.ts";
import { DEFAULT_PROFILES, PROFILES, TEST_SUITES } from "../../f/nix/lib/config/model.ts";
import {
  currentWmillLock,
  EMPTY_LOCK,
  metadataFor,
  parseSignature,
  schemaOfType,
  workspaceScripts,
} from "../../tools/windmill_metadata.ts";
import { baseEnv } from "../helpers/workbench.ts";

const WMILL = join(ROOT, "node_modules", ".bin", "wmill");
const flowYaml = readFileSync(FLOW_FILE, "utf8");
const flow = loadFlow();
interface Schema {
  description?: string;
  default?: unknown;
  items?: Schema;
  enum?: string[];
  properties: Record<string, Schema>;
  order?: string[];
}
const flowSchema = flow.schema as unknown as Schema;

describe("Windmill's own tools accept the workspace", () => {
  test("flow.yaml passes windmill-yaml-validator", () => {
    const { errors } = new WindmillYamlValidator().validate(flowYaml, { type: "flow" });
    assert.deepEqual(errors, []);
  });

  test("wmill lint passes on the whole workspace", () => {
    const out = execFileSync(WMILL, ["lint", "--json"], { cwd: ROOT, encoding: "utf8", env: { ...baseEnv(), NO_COLOR: "1" } });
    const report = JSON.parse(out.slice(out.indexOf("{")));
    assert.equal(report.success, true, JSON.stringify(report.issues));
    assert.ok(report.validFiles >= 1);
  });

  test("wmill-lock.yaml is current: the hashes wmill sync push tracks, as wmill itself computes them", () => {
    assert.equal(
      readFileSync(join(ROOT, "wmill-lock.yaml"), "utf8"),
      currentWmillLock(),
      "regenerate it with npm run windmill:metadata",
    );
  });

  test("wmill.yaml deploys f/ with Bun and .flow folders", () => {
    const config = parse(readFileSync(join(ROOT, "wmill.yaml"), "utf8"));
    assert.equal(config.defaultTs, "bun");
    assert.deepEqual(config.includes, ["f/**"]);
    assert.equal(config.nonDottedPaths, false);
    assert.ok(existsSync(FLOW_FILE));
  });
});

describe("script metadata matches what Windmill's parser infers", () => {
  for (const file of workspaceScripts()) {
    const path = file.slice(ROOT.length + 1).replace(/\.ts$/, "");
    test(path, () => {
      const yamlFile = join(ROOT, `${path}.script.yaml`);
      assert.ok(existsSync(yamlFile), `${path}.script.yaml is missing: run npm run windmill:metadata`);
      const committed = parse(readFileSync(yamlFile, "utf8"));
      // Compared against the parser's own view of the signature, field by field.
      const args = /export\s+async\s+function\s+main/.test(readFileSync(file, "utf8"))
        ? parseSignature(readFileSync(file, "utf8"))
        : [];
      assert.deepEqual(
        committed.schema.order,
        args.map((a) => a.name),
        "parameters and their order",
      );
      assert.deepEqual(
        committed.schema.required,
        args.filter((a) => !a.has_default).map((a) => a.name),
        "required list",
      );
      for (const arg of args) {
        const { description: _d, default: def, ...typed } = committed.schema.properties[arg.name];
        assert.deepEqual(typed, schemaOfType(arg.typ), `type and enum of ${arg.name}`);
        assert.deepEqual(def, arg.has_default && arg.default !== null ? arg.default : undefined, `default of ${arg.name}`);
        assert.notEqual(committed.schema.properties[arg.name].description, "", `${arg.name} needs a description (@param)`);
      }
      assert.equal(committed.kind, "script");
      assert.equal(committed.lock, `!inline ${path}.script.lock`);
      assert.equal(readFileSync(join(ROOT, `${path}.script.lock`), "utf8"), EMPTY_LOCK, "no dependencies to install");
      assert.equal(
        readFileSync(yamlFile, "utf8"),
        metadataFor(file).yaml,
        "regenerated metadata differs: run npm run windmill:metadata",
      );
    });
  }

  test("scripts import only node: built-ins and workspace scripts under f/", () => {
    const scripts = new Set(workspaceScripts());
    for (const file of scripts) {
      for (const [, spec = ""] of readFileSync(file, "utf8").matchAll(/^import[^"']*["']([^"']+)["']/gm)) {
        if (spec.startsWith("node:")) continue;
        assert.ok(/^\.\.?\/[a-z_/.]+\.ts$/.test(spec), `${file} imports ${spec}: only node: built-ins and relative .ts paths`);
        assert.ok(scripts.has(resolve(dirname(file), spec)), `${file} imports ${spec}, which is not a workspace script`);
      }
    }
  });
});

describe("the flow's modules, transforms and schema fit together", () => {
  test("modules run render -> lock -> build (-> prepare_root) on one worker, with the retries and timeouts asked for", () => {
    const doc = parse(flowYaml);
    assert.equal(doc.value.same_worker, true);
    const modules = doc.value.modules as { id: string; value: { path: string }; retry?: unknown; timeout?: unknown }[];
    assert.deepEqual(
      modules.map((m) => [m.id, m.value.path]),
      [
        ["render_config", "f/nix/render_config"],
        ["lock_config", "f/nix/lock_config"],
        ["build_closure", "f/nix/build_closure"],
        ["prepare_root", "f/nix/prepare_root"],
      ],
    );
    const byId = Object.fromEntries(modules.map((m) => [m.id, m]));
    assert.deepEqual(byId.lock_config?.retry, { constant: { attempts: 2, seconds: 5 } });
    assert.deepEqual(byId.build_closure?.retry, { constant: { attempts: 2, seconds: 10 } });
    assert.deepEqual(
      modules.map((m) => m.timeout),
      [120, 300, 3600, 1800].map((value) => ({ type: "static", value })),
    );
    assert.equal(flow.modules[3]?.skipIf, "!flow_input.root?.prepare", "prepare_root runs only when asked");
  });

  test("every input transform names a parameter of its script", () => {
    for (const module of flow.modules) {
      const params = parameterOrder(module.path);
      for (const name of Object.keys(module.inputTransforms))
        assert.ok(params.includes(name), `${module.id}: ${name} is not a parameter of ${module.path}`);
      const required = parse(readFileSync(join(ROOT, `${module.path}.script.yaml`), "utf8")).schema.required as string[];
      for (const name of required) assert.ok(name in module.inputTransforms, `${module.id}: required ${name} has no transform`);
    }
  });

  test("every flow_input.<group>?.<field> exists in the flow schema", () => {
    const used = [...flowYaml.matchAll(/flow_input\.(\w+)\??\.(\w+)/g)].map(
      ([, group = "", field = ""]) => [group, field] as const,
    );
    assert.equal(used.length, 19, "one use per flow input field");
    assert.equal([...flowYaml.matchAll(/expr: flow_input\.nix$/gm)].length, 3, "the nix group reaches every step that calls Nix");
    for (const [group, field] of used)
      assert.ok(flowSchema.properties[group]?.properties[field], `flow_input.${group}.${field} is not in the schema`);
    for (const [group, schema] of Object.entries(flowSchema.properties)) {
      assert.deepEqual(schema.order, Object.keys(schema.properties), `${group}: form order lists every field`);
      for (const [field, property] of Object.entries(schema.properties)) {
        assert.ok(property.description, `${group}.${field} needs a description`);
        assert.ok("default" in property, `${group}.${field} needs a default`);
      }
    }
    assert.deepEqual(flowSchema.order, ["guest", "closure", "lock", "root", "nix"]);
  });

  test("the schema's vocabularies and defaults are the contract's", () => {
    const closure = flowSchema.properties.closure?.properties ?? {};
    assert.deepEqual(closure.profiles?.items?.enum, [...PROFILES]);
    assert.deepEqual(closure.profiles?.default, [...DEFAULT_PROFILES]);
    assert.deepEqual(closure.test_suites?.items?.enum, [...TEST_SUITES]);
    assert.deepEqual(closure.test_suites?.default, [...TEST_SUITES]);
    assert.equal(flowSchema.properties.guest?.properties.home?.default, true);
    assert.equal(flowSchema.properties.guest?.properties.vm_name?.default, "nixos");
    assert.equal(flowSchema.properties.lock?.properties.update_lock?.default, false);
  });

  test("transforms on sample flow inputs give the step arguments", () => {
    const [render, lock, build] = flow.modules;
    assert.ok(render && lock && build);
    const input: FlowInput = {
      guest: { vm_name: "vm1", shares: { "/mnt/x": { tag: "x" } } },
      closure: { profiles: [] },
      lock: { update_lock: true },
    };
    assert.deepEqual(moduleArgs(render, input, {}), {
      vm_name: "vm1",
      shares: { "/mnt/x": { tag: "x" } },
      home: true,
      profiles: [],
      flow_input: input,
    });
    assert.deepEqual(
      moduleArgs(render, {}, {}),
      { home: true, flow_input: {} },
      "an empty flow input leaves every default to the step",
    );
    assert.deepEqual(moduleArgs(render, { guest: { home: false } }, {}), { home: false, flow_input: { guest: { home: false } } });
    const results = { render_config: { config_dir: "/w/0/nix/vm1" } };
    assert.deepEqual(moduleArgs(lock, input, results), { config_dir: "/w/0/nix/vm1", update: true });
    assert.deepEqual(moduleArgs(lock, { nix: { max_jobs: "4" } }, results), {
      config_dir: "/w/0/nix/vm1",
      update: false,
      nix_settings: { max_jobs: "4" },
    });
    assert.deepEqual(moduleArgs(lock, {}, results), { config_dir: "/w/0/nix/vm1", update: false });
    assert.deepEqual(moduleArgs(build, input, results), { config_dir: "/w/0/nix/vm1" });
    assert.deepEqual(
      moduleArgs(build, {}, { render_config: { config_dir: "/w/0/nix/vm1", optional_overrides: ["fio"] } }),
      { config_dir: "/w/0/nix/vm1", optional_overrides: ["fio"] },
      "the overrides render_config marked optional reach the build",
    );
    assert.deepEqual(moduleArgs(build, { nix: { publish_to: ["file:///c"] } }, results), {
      config_dir: "/w/0/nix/vm1",
      nix_settings: { publish_to: ["file:///c"] },
    });
    const prepare = flow.modules[3];
    assert.ok(prepare);
    const built = { ...results, build_closure: { config_dir: "/w/0/nix/vm1", toplevel: "/nix/store/x" } };
    assert.deepEqual(moduleArgs(prepare, { root: { prepare: true, dir: "/srv/roots/vm1" } }, built), {
      config_dir: "/w/0/nix/vm1",
      toplevel: "/nix/store/x",
      root_dir: "/srv/roots/vm1",
    });
  });
});
