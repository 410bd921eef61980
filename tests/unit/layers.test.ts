// The layout of the code, as docs/architecture.md states it: which layer may
// import which, that no module imports itself back, that a file name says one
// job, where the environment is read, and that the Windmill steps are thin
// adapters over the core.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, test } from "node:test";
import { COMMANDS } from "../../cli/main.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
const STEPS_DIR = join(ROOT, "f", "nix");
const LIB = join(STEPS_DIR, "lib");

/** What each layer of f/nix/lib may import, besides itself and node: built-ins. */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  nix: ["core"],
  config: ["core", "nix"],
  worker: ["core"],
  build: ["core", "nix"],
  steps: ["core", "nix", "config", "worker", "build"],
};

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(suffix))
    .map((name) => join(dir, name))
    .sort();
}

/** The modules a file imports (static, side-effect and dynamic imports, re-exports), resolved to absolute paths. */
function importsOf(file: string): string[] {
  const code = readFileSync(file, "utf8");
  const specs = [
    ...code.matchAll(/^(?:import|export)[^"';]*?from\s+["']([^"']+)["']/gm),
    ...code.matchAll(/^import\s+["']([^"']+)["']/gm),
    ...code.matchAll(/\bimport\(\s*["'`]([^"'`]+)["'`]/g),
  ].map(([, spec = ""]) => spec);
  return specs.map((spec) => (spec.startsWith(".") ? resolve(dirname(file), spec) : spec));
}

function layerOf(path: string): string | null {
  const rel = relative(LIB, path);
  return rel.startsWith("..") ? null : (rel.split("/")[0] ?? null);
}

describe("the layers of f/nix/lib", () => {
  test("every layer imports only the layers below it", () => {
    const layers = readdirSync(LIB, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    assert.deepEqual(layers.sort(), Object.keys(ALLOWED).sort(), "a new layer needs a place in ALLOWED and in the README");
    for (const file of filesUnder(LIB, ".ts")) {
      const own = layerOf(file) as string;
      for (const target of importsOf(file)) {
        if (target.startsWith("node:")) continue;
        const layer = layerOf(target);
        assert.ok(layer !== null, `${relative(ROOT, file)} imports ${target}, outside f/nix/lib`);
        assert.ok(
          layer === own || ALLOWED[own]?.includes(layer),
          `${relative(ROOT, file)} (${own}) imports ${relative(ROOT, target)} (${layer})`,
        );
      }
    }
  });

  test("f/nix holds the four steps, the list and remove scripts, their metadata and the flow; they import only lib/steps", () => {
    const entries = readdirSync(STEPS_DIR).sort();
    const steps = ["build_closure", "list", "lock_config", "prepare_root", "remove", "render_config"];
    assert.deepEqual(
      entries,
      [
        "build.flow",
        ...steps.flatMap((s) => [`${s}.script.lock`, `${s}.script.yaml`, `${s}.ts`]),
        "folder.meta.yaml",
        "lib",
      ].sort(),
    );
    for (const step of steps) {
      const file = join(STEPS_DIR, `${step}.ts`);
      for (const target of importsOf(file)) {
        assert.equal(layerOf(target), "steps", `${step}.ts imports ${target}`);
      }
    }
  });

  test("no step's core imports another's: what they share has one home (lib/steps/checks.ts and the like)", () => {
    const mains = readdirSync(STEPS_DIR)
      .filter((name) => name.endsWith(".ts"))
      .map((name) => join(STEPS_DIR, name));
    const cores = new Set(mains.flatMap(importsOf).filter((target) => target !== join(LIB, "steps", "context.ts")));
    for (const core of cores) {
      for (const target of importsOf(core)) {
        assert.ok(!cores.has(target), `${relative(ROOT, core)} imports ${relative(ROOT, target)}, another step's core`);
      }
    }
  });

  test("each step's main is an adapter of a few lines", () => {
    for (const step of ["build_closure", "list", "lock_config", "prepare_root", "remove", "render_config"]) {
      const code = readFileSync(join(STEPS_DIR, `${step}.ts`), "utf8");
      const body = code.slice(code.indexOf("): Promise<"));
      const lines = body.split("\n").filter((line) => line.trim() !== "");
      assert.ok(lines.length <= 20, `${step}.ts: main has ${lines.length} lines`);
      assert.match(body, /return runStep\(\s*"/, `${step}.ts runs its core through runStep`);
    }
  });
});

describe("modules under f/ and cli/", () => {
  const modules = [...filesUnder(join(ROOT, "f"), ".ts"), ...filesUnder(join(ROOT, "cli"), ".ts")];

  test("no module imports itself back, directly or through others", () => {
    const known = new Set(modules);
    const graph = new Map(modules.map((file) => [file, importsOf(file).filter((target) => known.has(target))]));
    const cycles: string[] = [];
    // Depth-first, each module left once: a module met again while still on the path closes a cycle.
    const state = new Map<string, "open" | "done">();
    const path: string[] = [];
    const visit = (file: string): void => {
      state.set(file, "open");
      path.push(file);
      for (const next of graph.get(file) ?? []) {
        if (state.get(next) === "open")
          cycles.push([...path.slice(path.indexOf(next)), next].map((f) => relative(ROOT, f)).join(" -> "));
        else if (!state.has(next)) visit(next);
      }
      path.pop();
      state.set(file, "done");
    };
    for (const file of modules) if (!state.has(file)) visit(file);
    assert.deepEqual(cycles, []);
  });

  test("no two modules share a file name: a name says its one job", () => {
    const byName = new Map<string, string[]>();
    for (const file of modules) {
      const name = file.slice(file.lastIndexOf("/") + 1);
      byName.set(name, [...(byName.get(name) ?? []), relative(ROOT, file)]);
    }
    const shared = [...byName.values()].filter((files) => files.length > 1);
    assert.deepEqual(shared, []);
  });
});

describe("configuration travels in the context", () => {
  const sources = [...filesUnder(join(ROOT, "f"), ".ts"), ...filesUnder(join(ROOT, "cli"), ".ts")];

  test("only the context builder reads process.env", () => {
    const readsEnv = /\bprocess\s*(?:\.\s*env\b|\[\s*["'`]env["'`]\s*\])|["']node:process["']|\bimport\.meta\.env\b|\bBun\.env\b/;
    const readers = sources.filter((file) => readsEnv.test(readFileSync(file, "utf8")));
    assert.deepEqual(
      readers.map((file) => relative(ROOT, file)),
      ["f/nix/lib/steps/context.ts"],
    );
  });

  test("the CLI makes a command's context in one place, and each command is a module of cli/commands/", () => {
    const makers = filesUnder(join(ROOT, "cli"), ".ts").filter((file) =>
      /\b(?:createContext|interruptSignal)\(/.test(readFileSync(file, "utf8")),
    );
    assert.deepEqual(
      makers.map((file) => relative(ROOT, file)),
      ["cli/command_context.ts"],
    );
    assert.deepEqual(
      COMMANDS.map((command) => `${command.name.replaceAll("-", "_")}_command.ts`).sort(),
      readdirSync(join(ROOT, "cli", "commands")).sort(),
    );
  });

  test("nothing under f/ or cli/ calls process.exit, and no library module keeps state of its own", () => {
    for (const file of sources) {
      const code = readFileSync(file, "utf8");
      assert.doesNotMatch(code, /process\s*\.\s*(?:exit|reallyExit)\b/, relative(ROOT, file));
      if (!file.startsWith(LIB)) continue;
      assert.doesNotMatch(code, /^(?:export\s+)?(?:let|var)\s/m, `${relative(ROOT, file)}: module state in a let`);
      // Module-level collections are state shared by every step of the process; the one exception is the context's channel.
      const shared = [...code.matchAll(/^(?:export\s+)?const\s+(\w+)\s*=\s*new\s+(\w+)/gm)].map(
        ([, name, type]) => `${name}: ${type}`,
      );
      const allowed = file === join(LIB, "steps", "context.ts") ? ["given: AsyncLocalStorage"] : [];
      assert.deepEqual(shared, allowed, relative(ROOT, file));
    }
  });
});
