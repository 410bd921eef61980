// The whole flow input checked before any step runs: what the CLI does, so
// that a bad field in a later group (nix, root) is refused before
// render_config writes anything.
import { isAbsolute } from "node:path";
import { composeGuest } from "../config/guest.ts";
import type { RenderInput } from "../config/model.ts";
import { InputError } from "../core/errors.ts";
import type { Env } from "../core/process.ts";
import { nixSettings } from "../nix/settings.ts";
import { workerLayout } from "../worker/layout.ts";
import { workerValidation } from "./render_config.ts";

/** The flow input as given: its groups, each an object of fields. */
export type FlowInput = Record<string, Record<string, unknown> | undefined>;

function optionalBoolean(field: string, value: unknown): void {
  if (value !== undefined && value !== null && typeof value !== "boolean") {
    throw new InputError(field, value, "must be true or false");
  }
}

/** Validates every group of the flow input as the steps will; reads the worker's files, writes nothing. */
export function checkFlowInput(env: Env, input: FlowInput): void {
  composeGuest({ ...input.guest, ...input.closure } as RenderInput, workerValidation(env, workerLayout(env)));
  optionalBoolean("lock.update_lock", input.lock?.update_lock);
  optionalBoolean("root.prepare", input.root?.prepare);
  const dir = input.root?.dir;
  if (dir !== undefined && dir !== null && dir !== "") {
    if (typeof dir !== "string") throw new InputError("root.dir", dir, "must be a string: an absolute path, or empty");
    if (!isAbsolute(dir)) throw new InputError("root.dir", dir, "must be an absolute path");
  }
  nixSettings(input.nix, "nix");
}
