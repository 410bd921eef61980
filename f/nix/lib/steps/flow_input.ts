// The whole flow input checked before any step runs: what the CLI does, so
// that a bad field in a later group (nix, root) is refused before
// render_config writes anything.

import { dirname } from "node:path";
import { currentGeneration, reservedPlace, rootLayout } from "../build/root/generations.ts";
import { checkDepth, checkKeys, expectBoolean, isPlainObject } from "../config/fields.ts";
import { composeGuest } from "../config/guest.ts";
import type { RenderInput } from "../config/model.ts";
import { InputError } from "../core/errors.ts";
import type { Env } from "../core/process.ts";
import { NIX_SETTINGS_FIELDS, type NixSettings, nixSettings } from "../nix/settings.ts";
import { workerLayout } from "../worker/layout.ts";
import { settingsPolicy } from "./context.ts";
import { checkGivenLibrary } from "./library.ts";
import { configDirOf, workerValidation } from "./render_config.ts";
import { checkRootRequest, closeRootRequest } from "./root_request.ts";

/** Refuses a store to publish to that is a directory of the worker's VMs or of a prepared root (a form could overwrite them). */
export function checkPublishTargets(env: Env, settings: NixSettings, field: string): void {
  settings.publishTo.forEach((uri, i) => {
    const local = /^file:\/\/(\/[^?]*)/.exec(uri)?.[1] ?? /^local\?(?:.*&)?root=([^&]*)/.exec(uri)?.[1];
    if (local === undefined) return;
    const workersDir = dirname(dirname(workerLayout(env).nixDir));
    const reason = reservedPlace(decodeURIComponent(local), workersDir);
    if (reason !== null) throw new InputError(`${field}[${i}]`, uri, `names a directory that ${reason}; publish elsewhere`);
  });
}

/** The flow input as given: its groups, each an object of fields. */
export type FlowInput = Record<string, Record<string, unknown> | undefined>;

/** The groups of the flow input and their fields, as flow.yaml's schema declares them (a test ties the two). */
export const FLOW_INPUT_FIELDS = {
  guest: ["vm_name", "user_name", "ssh_keys", "shares", "home", "home_dir", "hostname_at_boot"],
  closure: ["profiles", "test_suites", "overrides", "extra_overrides", "nixos_flake"],
  lock: ["update_lock"],
  root: ["prepare", "dir", "closures", "closure_files", "channel", "nix_build"],
  nix: NIX_SETTINGS_FIELDS,
} as const satisfies Record<string, readonly string[]>;

const GROUPS = Object.keys(FLOW_INPUT_FIELDS) as (keyof typeof FLOW_INPUT_FIELDS)[];

/** The group of a guest or closure field, to name it as the flow input does (`closure.profiles[0]`). */
function inGroup(error: InputError): InputError {
  const name = /^\w+/.exec(error.field)?.[0] ?? "";
  const group = GROUPS.find((g) => (FLOW_INPUT_FIELDS[g] as readonly string[]).includes(name));
  return group ? new InputError(`${group}.${error.field}`, error.value, error.reason) : error;
}

/**
 * Validates the whole flow input as the steps will, before any of them runs:
 * unknown groups and fields refused by name, booleans only booleans. Reads
 * the worker's files (the managed key, override directories), writes nothing.
 */
export function checkFlowInput(env: Env, input: unknown): asserts input is FlowInput {
  if (input === null || input === undefined) return;
  checkDepth("flow input", input);
  if (!isPlainObject(input)) throw new InputError("flow input", input, "must be an object of groups");
  checkKeys("flow input", input, GROUPS, "the flow input");
  for (const group of GROUPS) {
    const value = input[group];
    if (value === undefined || value === null) continue;
    if (!isPlainObject(value)) throw new InputError(group, value, "must be an object");
    checkKeys(group, value, FLOW_INPUT_FIELDS[group], `the ${group} group`);
  }
  const given = input as FlowInput;
  try {
    // With the flow's own defaults (home: true), so that what the flow will check is checked now.
    composeGuest(
      { ...given.guest, home: given.guest?.home ?? true, ...given.closure } as RenderInput,
      workerValidation(env, workerLayout(env)),
    );
  } catch (error) {
    throw error instanceof InputError ? inGroup(error) : error;
  }
  checkGivenLibrary(given.closure?.nixos_flake);
  expectBoolean("lock.update_lock", given.lock?.update_lock, false);
  expectBoolean("root.prepare", given.root?.prepare, false);
  const dir = given.root?.dir;
  if (given.root?.prepare === true || (dir !== undefined && dir !== null && dir !== "")) {
    // The root is checked now as prepare_root will check it, so that a bad one fails before anything is built.
    try {
      currentGeneration(rootLayout(configDirOf(env, given.guest?.vm_name), dir ?? ""));
    } catch (error) {
      if (error instanceof InputError && error.field === "root_dir") throw new InputError("root.dir", error.value, error.reason);
      throw error;
    }
  }
  closeRootRequest(checkRootRequest(given.root ?? {}, "root."));
  checkPublishTargets(env, nixSettings(given.nix, "nix", settingsPolicy(env)), "nix.publish_to");
}
