// The checks more than one step makes, each in one place: the whole flow
// input (what render_config and the CLI check before anything is written, so
// that a bad field in a later group, nix or root, writes nothing), a VM's
// config dir by name, what validating a guest needs from the worker, the
// stores a closure may be published to, a flake.lock that is JSON, and the
// source overrides reaching the system (build and plan). No step's core
// imports another's: what two of them share is here.
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { formatOverrides, type OverrideCheck, type OverrideReport, verifyOverrides } from "../build/override_reach.ts";
import { currentGeneration, reservedPlace, rootLayout } from "../build/root/generations.ts";
import { checkDepth, checkKeys, expectBoolean, isPlainObject } from "../config/fields.ts";
import { composeGuest, type ValidationContext, validateVmName } from "../config/guest.ts";
import { FALLBACK_HOME, type RenderInput } from "../config/model.ts";
import { sourceInputsOf } from "../config/render.ts";
import { InputError, SetupError } from "../core/errors.ts";
import { MAX_NIX_FILE_BYTES, readCache, readIfExists, readSmallFile, writeCache } from "../core/files.ts";
import { type Env, runningUid } from "../core/process.ts";
import { pathFlakeRef } from "../nix/flake_ref.ts";
import type { Nix } from "../nix/locate.ts";
import { NIX_SETTINGS_FIELDS, type NixSettings, nixSettings } from "../nix/settings.ts";
import { configDirCaches, configDirFor, type Layout, managedKeyPath, operatorHome, workerLayout } from "../worker/layout.ts";
import { type Context, settingsPolicy } from "./context.ts";
import { checkGivenLibrary } from "./library.ts";
import { checkRootRequest, closeRootRequest } from "./root_request.ts";

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

/** The config dir of a VM on this worker slot (the name validated as render_config does). */
export function configDirOf(env: Env, vmName: unknown): string {
  return configDirFor(workerLayout(env), validateVmName(vmName));
}

/** What validating a guest needs from this worker: its managed VM key (when it has one), the operator's home, the user running the step. */
export function workerValidation(env: Env, layout: Layout): ValidationContext & { uid: number } {
  const keyPath = managedKeyPath(layout);
  const managedLine = readIfExists(keyPath);
  return {
    managedKey: managedLine === null ? null : { path: keyPath, line: managedLine.trim() },
    defaultHome: operatorHome(env, FALLBACK_HOME),
    uid: runningUid(),
  };
}

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

/** Whether a text is JSON: a flake.lock cut short (a full disk, a crash) is not. */
export function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Refuses a config dir whose flake.lock is not JSON, naming the file and the step that repairs it. */
export function checkLockFile(context: Context, configDir: string): void {
  const lockFile = join(configDir, "flake.lock");
  const text = readIfExists(lockFile);
  if (text !== null && !isJson(text)) {
    throw new SetupError(
      `${lockFile} is not valid JSON (a write cut short?): run ${context.words.step("lock_config")}, which locks it afresh`,
    );
  }
}

/**
 * The source overrides of a locked config dir, checked to reach its system
 * before anything is built, and logged. The check is an evaluation; its
 * answer depends only on the config dir's files (flake.lock pins every
 * source), so it is kept beside the config dir and reused while they are
 * unchanged: a no-op rebuild asks Nix nothing more.
 */
export async function checkedOverrides(
  context: Context,
  nix: Nix,
  dir: string,
  optional: readonly string[],
): Promise<OverrideCheck> {
  const flake = readSmallFile(join(dir, "flake.nix"), MAX_NIX_FILE_BYTES);
  const lockText = readSmallFile(join(dir, "flake.lock"), MAX_NIX_FILE_BYTES);
  const sourceInputs = sourceInputsOf(flake);
  if (sourceInputs.length === 0) return { reports: [], toplevelDrv: null };
  const key = createHash("sha256")
    .update(JSON.stringify([flake, readSmallFile(join(dir, "default.nix"), MAX_NIX_FILE_BYTES), lockText, [...optional].sort()]))
    .digest("hex");
  const cacheFile = configDirCaches(dir).overrides;
  const cached = cachedReports(cacheFile, key);
  // A cached answer has no derivation: it may have come from other settings, so the build evaluates itself.
  const check = cached
    ? { reports: cached, toplevelDrv: null }
    : await verifyOverrides(nix, pathFlakeRef(dir), JSON.parse(lockText) as unknown, sourceInputs, optional);
  if (!cached) writeCache(cacheFile, { key, reports: check.reports });
  context.log.info(formatOverrides(check.reports));
  return check;
}

function cachedReports(file: string, key: string): OverrideReport[] | null {
  const cached = readCache(file) as { key?: unknown; reports?: OverrideReport[] } | null;
  // Reports of an older release lack what is asked of them now (how the source was taken): made afresh.
  const reports = cached?.key === key && Array.isArray(cached.reports) ? cached.reports : null;
  return reports?.every((r) => typeof r?.kind === "string") ? reports : null;
}
