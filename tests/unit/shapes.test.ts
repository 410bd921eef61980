// Each shape of the flow input is declared in more than one place (the TS
// model, flow.yaml's schema, render_config's form, the CLI's flags, the
// README's table); these tests tie the declarations together, so none can
// drift from the others.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadFlow, ROOT } from "../../cli/flow.ts";
import { FLAG_OF_FIELD } from "../../cli/input_from_flags.ts";
import { program } from "../../cli/main.ts";
import { STEP_MAINS } from "../../cli/steps.ts";
import {
  CURATED_OVERRIDE_PACKAGES,
  DEFAULT_PROFILES,
  DEFAULT_TEST_SUITES,
  OVERRIDE_FIELDS,
  PROFILES,
  TEST_SUITES,
} from "../../f/nix/lib/config/model.ts";
import { NIX_SETTINGS_FIELDS } from "../../f/nix/lib/nix/settings.ts";
import { FLOW_INPUT_FIELDS } from "../../f/nix/lib/steps/checks.ts";
import { type ParsedArg, type ParsedType, parseSignature } from "../../tools/windmill_metadata.ts";

interface Schema {
  type?: string;
  default?: unknown;
  enum?: string[];
  items?: Schema;
  order?: string[];
  properties?: Record<string, Schema>;
}

const flowSchema = loadFlow().schema as Schema;
const group = (name: string): Record<string, Schema> => flowSchema.properties?.[name]?.properties ?? {};
const renderForm = parseSignature(readFileSync(join(ROOT, "f", "nix", "render_config.ts"), "utf8"));
const formArg = (name: string): ParsedArg => {
  const arg = renderForm.find((a) => a.name === name);
  assert.ok(arg, `render_config has no parameter ${name}`);
  return arg;
};
const enumOf = (typ: ParsedType): string[] | null =>
  typeof typ === "object" && "list" in typ && typeof typ.list === "object" && "str" in typ.list ? typ.list.str : null;
const itemKeysOf = (typ: ParsedType): string[] =>
  typeof typ === "object" && "list" in typ && typeof typ.list === "object" && "object" in typ.list
    ? typ.list.object.props.map((p) => p.key)
    : [];

describe("vocabularies: the model, flow.yaml and render_config's form", () => {
  test("profiles and test suites", () => {
    assert.deepEqual(group("closure").profiles?.items?.enum, [...PROFILES]);
    assert.deepEqual(enumOf(formArg("profiles").typ), [...PROFILES]);
    assert.deepEqual(group("closure").profiles?.default, [...DEFAULT_PROFILES]);
    assert.deepEqual(group("closure").test_suites?.items?.enum, [...TEST_SUITES]);
    assert.deepEqual(enumOf(formArg("test_suites").typ), [...TEST_SUITES]);
    assert.deepEqual(group("closure").test_suites?.default, [...DEFAULT_TEST_SUITES]);
  });

  test("an override's fields and the curated packages", () => {
    for (const name of ["overrides", "extra_overrides"]) {
      assert.deepEqual(Object.keys(group("closure")[name]?.items?.properties ?? {}), [...OVERRIDE_FIELDS], `flow.yaml ${name}`);
      assert.deepEqual(itemKeysOf(formArg(name).typ), [...OVERRIDE_FIELDS], `render_config's ${name}`);
    }
    assert.deepEqual(group("closure").overrides?.items?.properties?.pkg?.enum, [...CURATED_OVERRIDE_PACKAGES]);
  });

  test("the nix group", () => {
    assert.deepEqual(Object.keys(group("nix")), [...NIX_SETTINGS_FIELDS]);
  });
});

describe("the flow input: flow.yaml, the CLI's flags and the README's table", () => {
  const schemaFields = Object.entries(flowSchema.properties ?? {}).flatMap(([name, g]) =>
    Object.keys(g.properties ?? {}).map((field) => `${name}.${field}`),
  );

  test("FLOW_INPUT_FIELDS, which the steps check input against, lists the schema's groups and fields", () => {
    const declared = Object.entries(FLOW_INPUT_FIELDS).flatMap(([name, fields]) => fields.map((field) => `${name}.${field}`));
    assert.deepEqual(declared, schemaFields);
  });

  test("every field has its flag, and every flag exists", () => {
    const flagFields = Object.entries(FLAG_OF_FIELD).flatMap(([name, fields]) =>
      Object.keys(fields).map((field) => `${name}.${field}`),
    );
    assert.deepEqual(flagFields, schemaFields);
    const offered = new Set(program().commands.flatMap((c) => c.options.map((o) => o.long)));
    for (const [field, flag] of Object.entries(FLAG_OF_FIELD).flatMap(([name, fields]) =>
      Object.entries(fields).map(([f, flag]) => [`${name}.${f}`, flag] as const),
    )) {
      assert.ok(offered.has(flag), `${field}: no command offers ${flag}`);
    }
  });

  test("the README's table lists every field, in the schema's order", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("| group | field | default | meaning |"));
    const rows = table.split("\n").slice(2);
    const listed: string[] = [];
    let current = "";
    for (const row of rows) {
      if (!row.startsWith("|")) break;
      const [, groupCell = "", fieldCell = ""] = row.split("|").map((c) => c.trim());
      if (groupCell !== "") current = groupCell.replaceAll("`", "");
      for (const [, field] of fieldCell.matchAll(/`(\w+)`/g)) listed.push(`${current}.${field}`);
    }
    assert.deepEqual(listed, schemaFields);
  });
});

describe("the CLI runs the flow's own steps", () => {
  test("every module of the flow has its main in the CLI, and no other", () => {
    assert.deepEqual(
      loadFlow()
        .modules.map((m) => m.path)
        .sort(),
      Object.keys(STEP_MAINS).sort(),
    );
  });
});

describe("defaults: a step run alone behaves as in the flow", () => {
  test("each main's default for a flow input field is the flow schema's default", () => {
    for (const module of loadFlow().modules) {
      const args = parseSignature(readFileSync(join(ROOT, `${module.path}.ts`), "utf8"));
      for (const [param, transform] of Object.entries(module.inputTransforms)) {
        if (transform.type !== "javascript") continue;
        const used = /^flow_input\.(\w+)\?\.(\w+)/.exec(transform.expr);
        if (!used) continue;
        const [, groupName = "", field = ""] = used;
        const arg = args.find((a) => a.name === param);
        assert.ok(arg, `${module.path} has no parameter ${param}`);
        // null stands for "the default" inside the step (the vocabulary tests tie those lists).
        if (arg.default === null) continue;
        assert.deepEqual(arg.default, group(groupName)[field]?.default, `${module.path}(${param}) vs ${groupName}.${field}`);
      }
    }
  });
});
