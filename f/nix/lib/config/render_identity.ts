// Which render a config dir holds. Two Windmill runs of one vm_name can
// interleave (render A, render B, then A's lock and build): the steps of one
// run must build what that run rendered. render_config returns the identity
// of the files it left; lock, build and prepare_root are given it by the
// flow and compare it, under the VM's lock, with the files there now. A git
// work tree's snapshot is not part of it: lock_config moves it to the tree's
// state on every run, as the same run's render would have.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { SetupError } from "../core/errors.ts";
import { MAX_NIX_FILE_BYTES, readIfExists, readSmallFile } from "../core/files.ts";
import { withoutWorkTreeSnapshots } from "./render.ts";

/** The identity of a render: a digest of the files it wrote (equal inputs render equal files, so they agree). */
export function renderIdOf(flakeNix: string, defaultNix: string): string {
  return createHash("sha256")
    .update(JSON.stringify(["render", withoutWorkTreeSnapshots(flakeNix), defaultNix]))
    .digest("hex")
    .slice(0, 32);
}

/** The identity of what a config dir holds now (its default.nix may be missing: a render cut short). */
export function currentRenderId(configDir: string): string {
  const flake = readSmallFile(join(configDir, "flake.nix"), MAX_NIX_FILE_BYTES);
  return renderIdOf(flake, readIfExists(join(configDir, "default.nix")) ?? "");
}

/**
 * Refuses to go on when the config dir no longer holds the render `expected`
 * names (another run rendered the VM with other inputs since). Empty: the
 * caller runs the step alone, on whatever the dir holds.
 */
export function checkRenderId(configDir: string, expected: unknown, step: string): void {
  if (expected === undefined || expected === null || expected === "") return;
  if (typeof expected !== "string") throw new SetupError(`render_id ${JSON.stringify(expected)} must be a string`);
  if (currentRenderId(configDir) !== expected) {
    throw new SetupError(
      `${configDir} was rendered again, with other inputs, by another run since this run's render_config ` +
        `(render ${expected}, now ${currentRenderId(configDir)}): ${step} stops rather than build a mix of both runs' inputs. ` +
        "Two runs are using one vm_name: give each its own, or run this one again.",
    );
  }
}
