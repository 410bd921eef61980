// The flow's steps, imported statically so that the CLI (bundled, with no
// TypeScript loader) runs the very mains Windmill runs.
import { main as buildClosure } from "../f/nix/build_closure.ts";
import { main as lockConfig } from "../f/nix/lock_config.ts";
import { main as prepareRoot } from "../f/nix/prepare_root.ts";
import { main as renderConfig } from "../f/nix/render_config.ts";

type StepMain = (...args: never[]) => Promise<unknown>;

/** Each step's main, by its Windmill path. */
export const STEP_MAINS: Readonly<Record<string, StepMain>> = {
  "f/nix/render_config": renderConfig,
  "f/nix/lock_config": lockConfig,
  "f/nix/build_closure": buildClosure,
  "f/nix/prepare_root": prepareRoot,
};
