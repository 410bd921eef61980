/**
 * lock_config: pin the inputs of a rendered config dir.
 *
 * Equivalent shell commands (Nix >= 2.19 and Lix; before 2.19 the update is
 * `nix flake lock path:$dir --update-input fio-src ...`):
 *
 *   nix flake lock path:$dir
 *   nix flake update --flake path:$dir fio-src ...   # every <pkg>-src input, every run
 *   nix flake update --flake path:$dir nixos-flake   # only with update=true
 *
 * Source overrides are local checkouts the operator edits, so they are
 * re-locked every time (a git work tree's input first moves to a snapshot of
 * the tree as it is now: `git stash create`, else HEAD, written into
 * flake.nix as its rev); the library is re-pinned only when asked. A failure
 * leaves flake.lock (and flake.nix) as it was. With no input to re-lock, and flake.nix and
 * flake.lock as the same Nix left them, `nix flake lock` would fill nothing:
 * it is not run.
 *
 * @param config_dir The config dir render_config returned.
 * @param update Re-pin the nixos-flake library input (after the library changed).
 * @param nix_settings The flow's nix group: builders, substituters, trusted_public_keys, max_jobs, cores, options.
 * @param render_id render_config's render_id: the step stops, changing nothing, when another run has rendered the VM with other inputs since. Empty: lock whatever the config dir holds.
 */
import { expectFlag, runStep } from "./lib/steps/context.ts";
import { type LockResult, lockConfig } from "./lib/steps/locking.ts";

// runStep builds this step's context (lib/steps/context.ts): on a Windmill worker from this process
// (its environment, stderr, an interrupt signal); under withContextOptions, as the CLI and the tests call
// this main, from the options they give.
export async function main(
  config_dir: string,
  update: boolean = false,
  nix_settings: object = {},
  render_id: string = "",
): Promise<LockResult> {
  return runStep("lock_config", nix_settings, (context) =>
    lockConfig(context, config_dir, expectFlag("update", update), render_id),
  );
}
