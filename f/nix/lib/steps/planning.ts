// build_closure's core with plan_only: what a build of a locked config dir
// would build and fetch, as `nix build --dry-run` reports it, building nothing.

import type { OverrideReport } from "../build/override_reach.ts";
import { type BuildPlan, formatPlan, parsePlan } from "../build/plan.ts";
import { toplevelInstallable } from "../nix/flake_ref.ts";
import { dryRun } from "../nix/operations.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { existingConfigDir } from "../worker/layout.ts";
import { checkedOverrides, checkLockFile } from "./checks.ts";
import type { Context } from "./context.ts";

export interface PlanResult {
  config_dir: string;
  plan: BuildPlan;
  /** Each source override, its source's store path and the closure paths that would be built from it. */
  overrides: OverrideReport[];
}

export async function planBuild(
  context: Context,
  configDir: string,
  optionalOverrides: readonly string[] = [],
): Promise<PlanResult> {
  const dir = existingConfigDir(configDir, context.words.step("render_config"), context.env);
  const nix = await context.nix();
  context.log.detail(`using ${nix.program}`);
  // Under the config dir's lock: Nix reads (and may complete) flake.lock while it plans.
  return withDirLock(dir, context, async () => {
    checkLockFile(context, dir);
    const overrides = (await checkedOverrides(context, nix, dir, optionalOverrides)).reports;
    const plan = parsePlan(await dryRun(nix, toplevelInstallable(dir)));
    // The plan is the result: the CLI prints it; a job log shows it here.
    context.log.detail(formatPlan(plan));
    return { config_dir: dir, plan, overrides };
  });
}
