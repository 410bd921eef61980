// Runs f/nix/build.flow/flow.yaml the way a Windmill worker does: for each
// module, evaluate its input transforms against the flow input and the
// earlier results, then call the script's `main` with the arguments by name
// (in the order of its schema). The CLI and the tests share this, so the
// command line cannot drift from the flow.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative, resolve } from "node:path";
import type { FlowInput } from "../f/nix/lib/steps/checks.ts";
import { STEP_MAINS } from "./steps.ts";

export type { FlowInput };

/**
 * The workspace's YAML as the bundle's build read it (scripts/build-cli.mjs
 * defines it): parsing YAML at every start costs tens of milliseconds. From
 * the sources (tests, tsx), the files themselves are read.
 */
declare const __WORKSPACE_YAML__: Record<string, unknown> | undefined;
const EMBEDDED = typeof __WORKSPACE_YAML__ === "undefined" ? null : __WORKSPACE_YAML__;

function readYaml(path: string): unknown {
  const key = relative(ROOT, path);
  if (EMBEDDED && key in EMBEDDED) return EMBEDDED[key];
  // Loaded only here, so the bundle (which has every file embedded) neither carries nor compiles the YAML parser.
  const { parse } = createRequire(import.meta.url)("yaml") as typeof import("yaml");
  return parse(readFileSync(path, "utf8"));
}

export const ROOT = resolve(import.meta.dirname, "..");
export const FLOW_FILE = join(ROOT, "f", "nix", "build.flow", "flow.yaml");

export type Transform = { type: "javascript"; expr: string } | { type: "static"; value: unknown };

export interface FlowModule {
  id: string;
  /** Workspace path of the script, e.g. f/nix/render_config. */
  path: string;
  inputTransforms: Record<string, Transform>;
  skipIf: string | null;
}

export interface Flow {
  modules: FlowModule[];
  schema: Record<string, unknown>;
}

export type Results = Record<string, Record<string, unknown>>;

export function loadFlow(file = FLOW_FILE): Flow {
  const doc = readYaml(file) as {
    value: {
      modules: {
        id: string;
        value: { path: string; input_transforms?: Record<string, Transform> };
        skip_if?: { expr: string };
      }[];
    };
    schema: Record<string, unknown>;
  };
  return {
    modules: doc.value.modules.map((m) => ({
      id: m.id,
      path: m.value.path,
      inputTransforms: m.value.input_transforms ?? {},
      skipIf: m.skip_if?.expr ?? null,
    })),
    schema: doc.schema,
  };
}

/** Evaluates a transform expression with `flow_input` and `results` in scope, as Windmill does. */
function evaluate(expr: string, flowInput: FlowInput, results: Results): unknown {
  return new Function("flow_input", "results", `"use strict"; return (${expr});`)(flowInput, results);
}

/** The arguments of one module; an argument that evaluates to undefined is left out (its default applies). */
export function moduleArgs(module: FlowModule, flowInput: FlowInput, results: Results): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const [name, transform] of Object.entries(module.inputTransforms)) {
    const value = transform.type === "static" ? transform.value : evaluate(transform.expr, flowInput, results);
    if (value !== undefined) args[name] = value;
  }
  return args;
}

/** The parameter names of a script's main, in order, from its .script.yaml. */
export function parameterOrder(scriptPath: string): string[] {
  const meta = readYaml(join(ROOT, `${scriptPath}.script.yaml`)) as { schema: { order: string[] } };
  return meta.schema.order;
}

export type Executor = (module: FlowModule, args: Record<string, unknown>) => Promise<Record<string, unknown>>;

/** Runs a module's script in this process: its `main` called with the arguments by name, in the order of its schema. */
export const runInProcess: Executor = async (module, args) => {
  const main = STEP_MAINS[module.path];
  if (!main) throw new Error(`the flow names ${module.path}, which is not a step of this CLI`);
  const call = main as (...a: unknown[]) => Promise<Record<string, unknown>>;
  return call(...parameterOrder(module.path).map((name) => args[name]));
};

export interface FlowRun {
  results: Results;
  /** The last module's result: the flow's result. */
  result: Record<string, unknown>;
}

/** Runs the modules in order (only those named, when `only` is given), skipping those whose skip_if holds. */
export async function runFlow(
  flow: Flow,
  flowInput: FlowInput,
  execute: Executor,
  options: { only?: readonly string[]; results?: Results; extraArgs?: Record<string, Record<string, unknown>> } = {},
): Promise<FlowRun> {
  const results: Results = { ...options.results };
  let result: Record<string, unknown> = {};
  for (const module of flow.modules) {
    if (options.only && !options.only.includes(module.id)) continue;
    if (module.skipIf && evaluate(module.skipIf, flowInput, results)) continue;
    result = await execute(module, { ...moduleArgs(module, flowInput, results), ...options.extraArgs?.[module.id] });
    results[module.id] = result;
  }
  return { results, result };
}
