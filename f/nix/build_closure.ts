/**
 * build_closure: build the system closure of a locked config dir.
 *
 * Equivalent shell commands:
 *
 *   nix path-info --derivation --recursive --json "path:$dir#toplevel"   # with overrides: each one reaches the system
 *   nix build "path:$dir#toplevel" --json --out-link "$dir/result" --log-format internal-json -v
 *   #   (with overrides: nix build "$toplevel_drv^out" ..., the derivation the check instantiated)
 *   nix build "$previous" --out-link "$dir/result-previous"   # keep the last closure rooted
 *   jq -r '."org.nixos.bootspec.v1" | .init, .initrd' "$dir/result/boot.json"
 *   nix path-info --json --recursive "$dir/result"            # closure report
 *   nix store diff-closures "$previous" "$dir/result"
 *
 *   nix copy --no-check-sigs --to "$uri" "$dir/result"       # each nix_settings.publish_to
 *
 * With plan_only: `nix build "path:$dir#toplevel" --dry-run`, nothing built.
 *
 * Evaluate once: the key of the evaluation (the config dir's files as
 * `path:` copies them, the Nix binary and version, `nix config show`, the
 * NIX_* environment) is recorded with the system it gave, in
 * $WORKERS_DIR/evaluations/<key>.json, shared by every VM of the worker.
 * When a build's key has a record whose system is still in the store, it
 * evaluates nothing:
 *
 *   nix build "$recorded_toplevel" --out-link "$dir/result"
 *
 * Runs of one key at once evaluate it once (the others wait for its
 * record); eval-cache = false (nix.options, nix.conf) evaluates anyway.
 *
 * `path:` copies the directory into the store, so nothing needs to be in git.
 * Nix replaces `result` only when the build succeeded, under the config
 * dir's lock; a failed or interrupted build keeps the previous one, and a
 * step killed outright takes its nix build with it (setpriv --pdeathsig). The closure the link pointed to
 * before stays a GC root as `result-previous` until the next build replaces
 * it, so a VM still running it keeps its store paths. Progress: a status line
 * on a terminal, a line every 10 s (and at each phase change) in a job log;
 * NIXOS_CLOSURE_PROGRESS=off gives Nix's own output.
 *
 * @param config_dir The config dir render_config returned (locked by lock_config).
 * @param plan_only Only report what the build would build and fetch (nix build --dry-run).
 * @param optional_overrides Overrides allowed to reach nothing in this VM's closure (render_config's optional_overrides); any other override that reaches nothing fails the step before anything is built.
 * @param nix_settings The flow's nix group: builders, substituters, trusted_public_keys, max_jobs, cores, options, and publish_to (store URIs to copy the closure to, with substitute_on_destination).
 * @param render_id render_config's render_id: the step stops, building nothing, when another run has rendered the VM with other inputs since. Empty: build whatever the config dir holds.
 */
import { type BuildClosureResult, buildClosure } from "./lib/steps/building.ts";
import { expectFlag, runStep } from "./lib/steps/context.ts";
import { type PlanResult, planBuild } from "./lib/steps/planning.ts";

// runStep builds this step's context (lib/steps/context.ts): on a Windmill worker from this process
// (its environment, stderr, an interrupt signal); under withContextOptions, as the CLI and the tests call
// this main, from the options they give.
export async function main(
  config_dir: string,
  plan_only: boolean = false,
  nix_settings: object = {},
  optional_overrides: string[] = [],
  render_id: string = "",
): Promise<BuildClosureResult | PlanResult> {
  return runStep(
    "build_closure",
    nix_settings,
    (context): Promise<BuildClosureResult | PlanResult> =>
      expectFlag("plan_only", plan_only)
        ? planBuild(context, config_dir, optional_overrides ?? [])
        : buildClosure(context, config_dir, optional_overrides ?? [], render_id ?? ""),
  );
}
