// Planning: what a build of a locked config dir would build and fetch, as
// `nix build --dry-run` reports it, building nothing.
import { type BuildPlan, formatPlan, parsePlan } from "../build/plan.ts";
import { dryRun } from "../nix/operations.ts";
import { withDirLock } from "../worker/dir_lock.ts";
import { existingConfigDir } from "../worker/layout.ts";
import { toplevelInstallable } from "./build_closure.ts";
import type { Context } from "./context.ts";
import { checkLockFile } from "./lock_config.ts";

export interface PlanResult {
  config_dir: string;
  plan: BuildPlan;
}

export async function planBuild(context: Context, configDir: string): Promise<PlanResult> {
  const dir = existingConfigDir(configDir);
  const nix = await context.nix();
  context.log.info(`using ${nix.version.text} at ${nix.program}`);
  // Under the config dir's lock: Nix reads (and may complete) flake.lock while it plans.
  return withDirLock(dir, context, async () => {
    checkLockFile(dir);
    const plan = parsePlan(await dryRun(nix, toplevelInstallable(dir)));
    context.log.info(formatPlan(plan));
    return { config_dir: dir, plan };
  });
}
