/**
 * remove: remove VMs of this worker slot, or those gone stale; safe on a schedule.
 *
 * Removes each VM's config dir (and with it its GC roots: result,
 * result-previous), its lock and caches, and its prepared roots'
 * generations (only ours), then tells what the next garbage collection can
 * free. Refuses a name that is not a VM of this worker and a VM a step is
 * working on; with older_than_days, removes the VMs not built for that long,
 * keeping the `keep` most recent, skipping those in use. Equivalent shell
 * commands:
 *
 *   rm -r $WORKERS_DIR/$WORKER_INDEX/nix/<vm> $WORKERS_DIR/$WORKER_INDEX/nix/<vm>.roots
 *   nix-store --gc                                                      # with collect
 *
 * @param vm_names The VMs to remove (their names, as render_config was given them).
 * @param older_than_days Also remove every VM not built for this many days, as `nixos-closure gc --older-than` does (0: every VM; empty: none by age).
 * @param keep With older_than_days, always keep this many of the most recent VMs.
 * @param keep_root Keep the VMs' prepared roots.
 * @param collect Run Nix's garbage collector afterwards.
 * @param dry_run Only say what would be removed.
 */
import { runStep } from "./lib/steps/context.ts";
import { type Collection, cleanUpVms } from "./lib/steps/vms.ts";

// runStep builds this step's context (lib/steps/context.ts): on a Windmill worker from this process
// (its environment, stderr, an interrupt signal); under withContextOptions, as the CLI and the tests call
// this main, from the options they give.
export async function main(
  vm_names: string[] = [],
  older_than_days: number | null = null,
  keep: number = 0,
  keep_root: boolean = false,
  collect: boolean = false,
  dry_run: boolean = false,
): Promise<Collection> {
  return runStep("remove", null, (context) =>
    cleanUpVms(context, {
      names: vm_names,
      olderThanDays: older_than_days,
      keep,
      keepRoot: keep_root,
      collect,
      dryRun: dry_run,
    }),
  );
}
