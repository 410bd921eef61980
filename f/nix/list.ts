/**
 * list: the VMs of this worker slot (or of all slots), their state, last
 * build, toplevel, closure size, and what only each keeps alive.
 *
 * Equivalent shell commands:
 *
 *   ls $WORKERS_DIR/$WORKER_INDEX/nix/                                 # config dirs: VM names
 *   readlink $WORKERS_DIR/$WORKER_INDEX/nix/<vm>/result                # its toplevel
 *   nix-store --gc --print-roots                                       # every GC root of the store
 *   nix path-info --json --recursive <every root's store path>         # sizes and references, once for all
 *
 * @param all_workers List the VMs of every worker slot under $WORKERS_DIR, not only this one.
 */
import { runStep } from "./lib/steps/context.ts";
import { listVms, type VmInfo } from "./lib/steps/vms.ts";

// runStep builds this step's context (lib/steps/context.ts): on a Windmill worker from this process
// (its environment, stderr, an interrupt signal); under withContextOptions, as the CLI and the tests call
// this main, from the options they give.
export async function main(all_workers: boolean = false): Promise<VmInfo[]> {
  return runStep("list", null, (context) => listVms(context, all_workers));
}
