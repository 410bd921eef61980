// What a lock did to a flake's inputs, in one line. Nix's own account
// ("warning: creating lock file", then "• Added input ..." with each URL and
// hash) takes many lines, differs between versions, and Nix 2.8 gives none;
// the lock files before and after say the same on every version.

interface LockNode {
  inputs?: Record<string, unknown>;
  locked?: unknown;
}

/** A root input: what it is locked to (a node's `locked`), or the input path it follows. */
interface RootInput {
  follows: boolean;
  key: string;
}

/** The root node's inputs of a flake.lock (parsed), by name, in the lock's order. */
function rootInputs(lock: unknown): Map<string, RootInput> {
  const file = (typeof lock === "object" && lock !== null ? lock : {}) as { nodes?: unknown; root?: unknown };
  const nodes = (typeof file.nodes === "object" && file.nodes !== null ? file.nodes : {}) as Record<string, LockNode>;
  const root = nodes[typeof file.root === "string" ? file.root : "root"];
  const inputs = new Map<string, RootInput>();
  for (const [name, target] of Object.entries(root?.inputs ?? {})) {
    const follows = Array.isArray(target);
    const locked = typeof target === "string" ? nodes[target]?.locked : undefined;
    inputs.set(name, { follows, key: JSON.stringify(follows ? target : (locked ?? null)) });
  }
  return inputs;
}

/**
 * What changed between two flake.lock files (`before` null: there was none):
 * `locked nixos-flake, nixpkgs (follows)`, `updated xfsprogs-src`, `removed
 * fio-src`, joined by `; `; null when the root's inputs are locked as before.
 */
export function lockChanges(before: unknown, after: unknown): string | null {
  const old = rootInputs(before);
  const now = rootInputs(after);
  const named = (name: string, input: RootInput) => (input.follows ? `${name} (follows)` : name);
  const added = [...now].filter(([name]) => !old.has(name)).map(([name, input]) => named(name, input));
  const updated = [...now]
    .filter(([name, input]) => old.has(name) && old.get(name)?.key !== input.key)
    .map(([name, input]) => named(name, input));
  const removed = [...old.keys()].filter((name) => !now.has(name));
  const parts = [
    ...(added.length > 0 ? [`locked ${added.join(", ")}`] : []),
    ...(updated.length > 0 ? [`updated ${updated.join(", ")}`] : []),
    ...(removed.length > 0 ? [`removed ${removed.join(", ")}`] : []),
  ];
  return parts.length > 0 ? parts.join("; ") : null;
}
