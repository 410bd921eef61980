// The VMs of a worker: what each config dir holds, what its closures cost
// and what only it keeps alive, removing one (only what is ours), and
// comparing two systems.
import { existsSync, lstatSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { forgetCollected } from "../build/evaluation_record.ts";
import { type ClosureDiff, compareClosures } from "../build/report.ts";
import { preparedRootsOf, type RootLayout, removeRoot, removeTree, rootFiles, rootsRecordOf } from "../build/root/generations.ts";
import { expectBoolean } from "../config/fields.ts";
import { isVmName, validateVmName } from "../config/guest.ts";
import { Busy, InputError, NixError } from "../core/errors.ts";
import { existingLinkTarget, readCache, readIfExists } from "../core/files.ts";
import { didYouMean } from "../core/suggest.ts";
import type { PathInfo } from "../nix/json.ts";
import type { Nix } from "../nix/locate.ts";
import { closureInfo, collectGarbage, gcRoots } from "../nix/operations.ts";
import { STORE_PATH } from "../nix/store_path.ts";
import { hasLockOfOurs, lockHolderOf, lockPathFor, withDirLock } from "../worker/dir_lock.ts";
import { configDirCaches, workerLayout } from "../worker/layout.ts";
import type { Context } from "./context.ts";

/** `incomplete`: a removal that was stopped (or a first render), which remove and gc finish. */
export type VmState = "rendered" | "locked" | "built" | "root prepared" | "incomplete";

export interface VmInfo {
  vm_name: string;
  worker: string;
  config_dir: string;
  state: VmState;
  /** When `result` last changed, ISO 8601, or null when never built. */
  built_at: string | null;
  toplevel: string | null;
  /** Bytes of the closures its GC roots hold (result and result-previous). */
  closure_size: number;
  /** Bytes that no other GC root of the store holds: what removing this VM lets the garbage collector free. */
  unique_size: number;
  gc_roots: string[];
  /** Generations of its prepared roots. */
  prepared_roots: string[];
  /** The roots it prepared (each a link to its current generation), wherever they are. */
  root_dirs: string[];
}

const RENDERED_MARK = "# Rendered by nixos-closure";

/**
 * A config dir of ours: named as a VM can be, a directory holding a flake.nix
 * and the default.nix render_config writes. (A copy under another name is
 * not a VM: its name could be anything, and is offered to shells.)
 */
function isVmDir(dir: string): boolean {
  try {
    return (
      isVmName(basename(dir)) &&
      lstatSync(dir).isDirectory() &&
      existsSync(join(dir, "flake.nix")) &&
      (readIfExists(join(dir, "default.nix")) ?? "").startsWith(RENDERED_MARK)
    );
  } catch {
    return false;
  }
}

/**
 * What a VM's removal (or a first render) left when stopped: a directory
 * named as a VM, no longer a whole config dir, with a lock of ours beside
 * it. Still a VM to list, remove and collect.
 */
function isIncompleteVmDir(dir: string): boolean {
  return (
    isVmName(basename(dir)) &&
    lstatSync(dir, { throwIfNoEntry: false })?.isDirectory() === true &&
    !isVmDir(dir) &&
    hasLockOfOurs(dir)
  );
}

/** The worker slots to look in: this one, or every slot under WORKERS_DIR. */
function nixDirs(context: Context, allWorkers: boolean): { worker: string; dir: string }[] {
  const layout = workerLayout(context.env);
  if (!allWorkers) return [{ worker: context.env.WORKER_INDEX ?? "0", dir: layout.nixDir }];
  const workersDir = dirname(dirname(layout.nixDir));
  return readdirSync(workersDir)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(a) - Number(b))
    .map((worker) => ({ worker, dir: join(workersDir, worker, "nix") }));
}

/** Removes a directory of ours once nothing is left in it (another root of the VM, kept, keeps it). */
function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {}
}

/** The generations of the roots a VM prepared, oldest first within each root. */
function generationsOf(roots: readonly RootLayout[]): string[] {
  return roots
    .flatMap((root) =>
      readdirSync(root.generationsDir)
        .filter((n) => /^\d+$/.test(n))
        .sort((a, b) => Number(a) - Number(b))
        .map((n) => join(root.generationsDir, n)),
    )
    .sort();
}

/** Every path reachable from `starts` over `references`. */
function reachable(starts: Iterable<string>, references: ReadonlyMap<string, readonly string[]>): Set<string> {
  const seen = new Set<string>();
  const pending = [...starts];
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    for (const next of references.get(path) ?? []) if (!seen.has(next)) pending.push(next);
  }
  return seen;
}

/**
 * The closure of those of `paths` that are still valid. The GC roots of the
 * whole store are read first, and any of their targets may be collected or
 * deleted by someone else before Nix is asked: such a path is left out (Nix
 * names it), not a reason to fail the listing.
 */
async function closureOfLive(nix: Nix, paths: readonly string[]): Promise<PathInfo[]> {
  let live = paths.filter((path) => existsSync(path));
  for (let attempt = 0; ; attempt++) {
    if (live.length === 0) return [];
    try {
      return await closureInfo(nix, live);
    } catch (error) {
      const gone = error instanceof NixError ? /path '([^']+)' is not valid/.exec(error.nixMessage)?.[1] : undefined;
      if (gone === undefined || attempt >= 10) throw error;
      if (live.includes(gone)) live = live.filter((path) => path !== gone);
      // Before Nix 2.9, path-info takes a .drv for its outputs: an unbuilt derivation somebody roots names an
      // output that does not exist. Such roots then go (what they keep is build inputs, not a system's paths).
      else if (live.some((path) => path.endsWith(".drv"))) live = live.filter((path) => !path.endsWith(".drv"));
      else throw error;
    }
  }
}

/** The names of this worker slot's VMs, read from its directory alone (no Nix): what shell completion offers. */
export function vmNames(context: Context): string[] {
  const [{ dir }] = nixDirs(context, false) as [{ worker: string; dir: string }];
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .filter((name) => isVmDir(join(dir, name)));
}

/** The VMs of this worker slot (or all slots), with their sizes from one `nix path-info` of every GC root of the store. */
export async function listVms(context: Context, allWorkersGiven: unknown = false): Promise<VmInfo[]> {
  const allWorkers = expectBoolean("all_workers", allWorkersGiven, false);
  const vms: (Omit<VmInfo, "closure_size" | "unique_size"> & { held: string[] })[] = [];
  for (const { worker, dir } of nixDirs(context, allWorkers)) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const configDir = join(dir, name);
      const complete = isVmDir(configDir);
      if (!complete && !isIncompleteVmDir(configDir)) continue;
      const result = existingLinkTarget(join(configDir, "result"));
      const previous = existingLinkTarget(join(configDir, "result-previous"));
      const rootLayouts = preparedRootsOf(configDir);
      const roots = generationsOf(rootLayouts);
      const state: VmState = !complete
        ? "incomplete"
        : roots.length > 0
          ? "root prepared"
          : result
            ? "built"
            : existsSync(join(configDir, "flake.lock"))
              ? "locked"
              : "rendered";
      vms.push({
        vm_name: name,
        worker,
        config_dir: configDir,
        state,
        built_at: result ? lstatSync(join(configDir, "result")).mtime.toISOString() : null,
        toplevel: result,
        gc_roots: [result ? join(configDir, "result") : null, previous ? join(configDir, "result-previous") : null].filter(
          (p): p is string => p !== null,
        ),
        prepared_roots: roots,
        root_dirs: rootLayouts.map((root) => root.rootDir),
        held: [result, previous].filter((p): p is string => p !== null),
      });
    }
  }
  // Nothing built: no size to ask Nix for.
  if (vms.every((vm) => vm.held.length === 0)) return vms.map(({ held, ...vm }) => ({ ...vm, closure_size: 0, unique_size: 0 }));
  const nix = await context.nix();
  const ours = new Set(vms.flatMap((vm) => vm.gc_roots));
  const others = (await gcRoots(nix)).filter((root) => !ours.has(root.link)).map((root) => root.target);
  const starts = [...new Set([...vms.flatMap((vm) => vm.held), ...others])];
  const infos = await closureOfLive(nix, starts);
  const references = new Map(infos.map((info) => [info.path, info.references]));
  const sizes = new Map(infos.map((info) => [info.path, info.narSize]));
  const size = (paths: Iterable<string>) => [...paths].reduce((n, path) => n + (sizes.get(path) ?? 0), 0);
  return vms.map(({ held, ...vm }) => {
    const mine = reachable(held, references);
    const elsewhere = reachable(
      [...others, ...vms.filter((v) => v.config_dir !== vm.config_dir).flatMap((v) => v.held)],
      references,
    );
    return { ...vm, closure_size: size(mine), unique_size: size([...mine].filter((path) => !elsewhere.has(path))) };
  });
}

export interface Removal {
  vm_name: string;
  config_dir: string;
  /** What was (or, with dry_run, would be) removed. */
  removed: string[];
  /** What the next garbage collection can free, in bytes. */
  frees: number;
  dry_run: boolean;
}

/**
 * The config dir of a VM of this worker, refusing a name that is not one;
 * with `leftovers`, also the name of one whose render failed before writing
 * its config dir (only its lock file is there).
 */
function vmDir(context: Context, name: unknown, field = "vm_name", leftovers = false): string {
  const vmName = validateVmName(name);
  const dir = join(workerLayout(context.env).nixDir, vmName);
  if (!(leftovers ? vmOrLeftover(dir) : isVmDir(dir))) {
    throw new InputError(
      field,
      name,
      `is not a VM of this worker (no config dir rendered by nixos-closure at ${dir})${didYouMean(vmName, vmNames(context))}`,
    );
  }
  return dir;
}

/** A VM's config dir, one a stopped removal left, or what a render that failed before writing one left: its lock file. */
function vmOrLeftover(dir: string): boolean {
  return (
    isVmDir(dir) ||
    isIncompleteVmDir(dir) ||
    (lstatSync(dir, { throwIfNoEntry: false }) === undefined &&
      lstatSync(lockPathFor(dir), { throwIfNoEntry: false })?.isFile() === true)
  );
}

interface RemoveOptions {
  dryRun?: boolean;
  keepRoot?: boolean;
  /** The worker's VMs as listed already (their sizes), to not ask Nix again. */
  listed?: readonly VmInfo[];
  /** Skips a VM in use (and says which) instead of refusing. */
  onBusy?: (name: string) => void;
  /** Asked again once the VM's lock is held: whether it is still to go (a build may have renewed it since the listing). */
  stillWanted?: (dir: string) => boolean;
}

/**
 * Removes VMs: each one's config dir (and so its GC roots), its lock, its
 * caches and its prepared roots' generations (unless `keepRoot`), only
 * what is ours; refuses a name that is not a VM of this worker and a VM a
 * step is working on (or, with `onBusy`, skips it and goes on).
 */
async function removeVms(context: Context, names: readonly string[], options: RemoveOptions = {}): Promise<Removal[]> {
  const dirs = [...new Set(names.map((name, i) => vmDir(context, name, `vm_names[${i}]`, true)))];
  if (dirs.length === 0) return [];
  const listed = new Map((options.listed ?? (await listVms(context))).map((vm) => [vm.config_dir, vm]));
  const removals: Removal[] = [];
  for (const dir of dirs) {
    const name = basename(dir);
    const inUse = (holder: string) => {
      if (!options.onBusy)
        throw new Busy(holder, `${name} is in use by ${holder}; it was not removed: try again when it is done`);
      options.onBusy(name);
    };
    let removed: string[] | null;
    if (options.dryRun) {
      // Asking who holds it makes no lock file.
      const holder = await lockHolderOf(dir, context.env);
      if (holder !== null) {
        inUse(holder);
        continue;
      }
      removed = vmFiles(dir, options.keepRoot === true).all;
    } else {
      try {
        // Held while the files go (a step starting now waits, then finds no VM); no check before taking it, which
        // a step could start right after: a VM busy when its turn comes is in use, whenever it became so.
        removed = await withDirLock(dir, { ...context, lockWaitSeconds: 0 }, async () => {
          // What the listing saw may have changed: another run removed the VM, or a build renewed it.
          if (!vmOrLeftover(dir) || options.stillWanted?.(dir) === false) return null;
          const files = vmFiles(dir, options.keepRoot === true);
          // Each root outside the config dir is held too (a VM asking for it waits), all before anything goes.
          const outside = files.roots.filter((root) => root.lockDir !== dir);
          await withDirLocks(
            outside.map((root) => root.lockDir),
            context,
            async () => deleteVm(dir, files, outside),
          );
          return files.all;
        });
      } catch (error) {
        if (!(error instanceof Busy)) throw error;
        inUse(error.holder);
        continue;
      }
      if (removed === null) continue;
    }
    context.log.info(`${options.dryRun ? "would remove" : "removed"} ${removed.join(", ")}`);
    removals.push({
      vm_name: name,
      config_dir: dir,
      removed,
      frees: listed.get(dir)?.unique_size ?? 0,
      dry_run: Boolean(options.dryRun),
    });
  }
  return removals;
}

interface VmFiles {
  /** Its caches and its record of roots (only ours: a file of someone else's there stays). */
  caches: string[];
  roots: RootLayout[];
  all: string[];
}

/** What removing a VM takes: its config dir, caches and record, its roots (unless kept), and its lock. */
function vmFiles(dir: string, keepRoot: boolean): VmFiles {
  const caches = [...Object.values(configDirCaches(dir)), rootsRecordOf(dir)].filter(
    (p) => existsSync(p) && readCache(p) !== null,
  );
  const roots = keepRoot ? [] : preparedRootsOf(dir);
  const rootLocks = roots.filter((root) => root.lockDir !== dir).map((root) => lockPathFor(root.lockDir));
  const all = [dir, ...caches, ...roots.flatMap(rootFiles), ...rootLocks, lockPathFor(dir)];
  return { caches, roots, all: [...new Set(all)].filter((path) => lstatSync(path, { throwIfNoEntry: false }) !== undefined) };
}

/** Runs `work` holding the locks of `dirs`, none waited for: one in use is Busy, and nothing was done. */
async function withDirLocks<T>(dirs: readonly string[], context: Context, work: () => Promise<T>): Promise<T> {
  const [first, ...rest] = dirs;
  if (first === undefined) return work();
  return withDirLock(first, { ...context, lockWaitSeconds: 0 }, () => withDirLocks(rest, context, work));
}

/**
 * Deletes a VM, its config dir's lock and the locks of `outside` roots held,
 * in an order that leaves, wherever it is stopped (SIGKILL, a full disk), a
 * VM that list shows and remove and gc finish: flake.nix goes first (from then
 * on the VM is incomplete), default.nix and the lock last; the GC roots go
 * before the rest of the config dir.
 */
function deleteVm(dir: string, files: VmFiles, outside: readonly RootLayout[]): void {
  rmSync(join(dir, "flake.nix"), { force: true });
  for (const root of files.roots) removeRoot(root);
  // Last of each root, still held: a waiter then finds its file gone and locks the path afresh.
  for (const root of outside) rmSync(lockPathFor(root.lockDir), { force: true });
  removeIfEmpty(`${dir}.roots`);
  for (const link of ["result-previous", "result"]) rmSync(join(dir, link), { force: true });
  const exists = lstatSync(dir, { throwIfNoEntry: false }) !== undefined;
  for (const name of exists ? readdirSync(dir) : []) {
    const path = join(dir, name);
    if (name === "default.nix") continue;
    // A link (a root's, dangling or not) goes as a link; a directory of ours whole.
    if (lstatSync(path).isDirectory()) removeTree(path);
    else rmSync(path, { force: true });
  }
  for (const file of files.caches) rmSync(file, { force: true });
  rmSync(join(dir, "default.nix"), { force: true });
  // Fails (and keeps the lock, so the VM stays one to finish) if anything could not go.
  if (exists) rmdirSync(dir);
  // Last, still held: a waiter then finds its file gone and locks the path afresh (worker/dir_lock.ts).
  rmSync(lockPathFor(dir), { force: true });
}

export interface SystemDiff {
  from: string;
  to: string;
  diff: ClosureDiff;
}

const SYSTEM_SPELLING = "must be VM, VM@previous, or a system's store path (/nix/store/<hash>-<name>)";

/** A system named as the CLI takes it: a VM (its last build), `VM@previous` (the build before), or a store path. */
function systemOf(context: Context, name: string): string {
  if (name.startsWith("/")) {
    if (!STORE_PATH.test(name) || name.endsWith(".drv")) throw new InputError("system", name, SYSTEM_SPELLING);
    if (!existsSync(name)) throw new InputError("system", name, "is not in the store");
    return name;
  }
  const spelled = /^([^@]+)(@previous)?$/.exec(name);
  if (!spelled) throw new InputError("system", name, SYSTEM_SPELLING);
  const [, vm = "", previous] = spelled;
  const dir = vmDir(context, vm);
  const target = existingLinkTarget(join(dir, previous ? "result-previous" : "result"));
  if (target === null) throw new InputError("system", name, previous ? "has no previous build" : "has not been built");
  return target;
}

/** `a` against `b`; without `b`, a VM's previous build against its last one (`a` may be VM or VM@previous). */
export async function diffSystems(context: Context, a: string, b?: string): Promise<SystemDiff> {
  if (b === undefined && a.startsWith("/"))
    throw new InputError("system", a, "is a store path, which has no previous build: name a second system to compare with");
  const vm = a.replace(/@previous$/, "");
  const [from, to] =
    b === undefined ? [systemOf(context, `${vm}@previous`), systemOf(context, vm)] : [systemOf(context, a), systemOf(context, b)];
  const nix = await context.nix();
  const diff = await compareClosures(nix, from, await closureInfo(nix, [from]), to, await closureInfo(nix, [to]));
  return { from, to, diff };
}

export interface Collection {
  removed: Removal[];
  /** VMs left because a step is working on them. */
  in_use: string[];
  /** With older_than_days: every VM looked at and left, and why (recent, or one of the `keep` most recent). */
  kept: { vm_name: string; reason: string }[];
  /** What nix-store --gc printed it freed, when asked to collect. */
  collected: string | null;
  /** Evaluation records (and kept closures) forgotten after collecting: their systems are gone from the store. */
  forgotten_records: number;
}

/** A clean-up as asked for: each field checked by cleanUpVms, and named as the Windmill script names it. */
export interface CleanUp {
  /** VMs to remove by name (`vm_names`). */
  names?: unknown;
  /** Also remove the VMs not built (nor rendered) for this many days (0: every one); absent (or null): none by age. */
  olderThanDays?: unknown;
  /** With olderThanDays, keep this many of the most recent VMs. */
  keep?: unknown;
  keepRoot?: unknown;
  /** Run Nix's garbage collector afterwards. */
  collect?: unknown;
  dryRun?: unknown;
}

/** When a VM was last built (its result link changed), else rendered; -Infinity when neither is there. */
function lastUsed(dir: string): number {
  const built = existingLinkTarget(join(dir, "result")) === null ? undefined : lstatSync(join(dir, "result")).mtimeMs;
  return built ?? lstatSync(join(dir, "default.nix"), { throwIfNoEntry: false })?.mtimeMs ?? Number.NEGATIVE_INFINITY;
}

/** A count given as a number or as digits (a form may send either); nothing else, not even null or "". */
function wholeNumber(field: string, value: unknown, what: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new InputError(field, value, `must be ${what}`);
  return n;
}

/** Days given as a number or as a decimal (30, 0.5, "7"); nothing else. */
function days(field: string, value: unknown): number {
  const n = typeof value === "string" && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) throw new InputError(field, value, "must be a number of days >= 0");
  return n;
}

/** The names of the VMs to remove, each a VM name: an empty one is refused, never taken as the default VM. */
function namesToRemove(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InputError("vm_names", value, "must be a list of VM names");
  return value.map((name, i) => {
    if (typeof name !== "string" || !isVmName(name)) {
      throw new InputError(`vm_names[${i}]`, name, "is not a VM name (letters, digits, '-' and '_')");
    }
    return name;
  });
}

/**
 * A flag whose absence means removing for real (dry_run, keep_root): given
 * as null (a form's empty field, a script's unset variable) it is refused,
 * never taken as false.
 */
function guardingFlag(field: string, value: unknown): boolean {
  if (value === null) throw new InputError(field, value, "must be true or false: null would mean removing for real");
  return expectBoolean(field, value, false);
}

/**
 * Removes the VMs named, and those not used for `olderThanDays` (keeping
 * the `keep` most recent, never one in use); with `collect`, runs Nix's
 * garbage collector afterwards. Every field is checked, and every name
 * found, before anything is removed.
 */
export async function cleanUpVms(context: Context, options: CleanUp): Promise<Collection> {
  const names = namesToRemove(options.names);
  const olderThan =
    options.olderThanDays === undefined || options.olderThanDays === null ? null : days("older_than_days", options.olderThanDays);
  const keep =
    options.keep === undefined
      ? 0
      : wholeNumber("keep", options.keep, "a whole number >= 0: how many of the most recent VMs to keep");
  const removal = {
    dryRun: guardingFlag("dry_run", options.dryRun),
    keepRoot: guardingFlag("keep_root", options.keepRoot),
  };
  const collect = expectBoolean("collect", options.collect, false);
  for (const [i, name] of names.entries()) vmDir(context, name, `vm_names[${i}]`, true);
  // Listed once: each VM's size, and which are stale.
  const listed = names.length > 0 || olderThan !== null ? await listVms(context) : [];
  const removed = await removeVms(context, names, { ...removal, listed });
  const inUse: string[] = [];
  const kept: Collection["kept"] = [];
  if (olderThan !== null) {
    const cutoff = Date.now() - olderThan * 24 * 3600 * 1000;
    // (0 days: every VM, including one rendered in this very millisecond.)
    // A VM whose removal was stopped is always to finish, and not one of the `keep` most recent.
    const isStale = (dir: string) => !isVmDir(dir) || olderThan === 0 || lastUsed(dir) < cutoff;
    const stale = [
      ...listed
        .filter((vm) => vm.state !== "incomplete")
        .sort((x, y) => lastUsed(y.config_dir) - lastUsed(x.config_dir))
        .slice(keep),
      ...listed.filter((vm) => vm.state === "incomplete"),
    ].filter((vm) => isStale(vm.config_dir) && !removed.some((r) => r.config_dir === vm.config_dir));
    const onBusy = (name: string) => inUse.push(name);
    removed.push(
      ...(await removeVms(
        context,
        stale.map((vm) => vm.vm_name),
        { ...removal, listed, onBusy, stillWanted: isStale },
      )),
    );
    const recent = listed
      .filter((vm) => vm.state !== "incomplete")
      .sort((x, y) => lastUsed(y.config_dir) - lastUsed(x.config_dir))
      .slice(0, keep)
      .map((vm) => vm.vm_name);
    for (const vm of listed) {
      if (removed.some((r) => r.vm_name === vm.vm_name) || inUse.includes(vm.vm_name)) continue;
      const when = new Date(lastUsed(vm.config_dir)).toISOString().slice(0, 16).replace("T", " ");
      kept.push({
        vm_name: vm.vm_name,
        reason: recent.includes(vm.vm_name)
          ? `one of the ${keep} most recent`
          : `${vm.built_at ? "built" : "rendered"} ${when} UTC, less than ${olderThan} days ago`,
      });
    }
  }
  const collected = collect && !removal.dryRun ? await collectGarbage(await context.nix()) : null;
  // A record whose system was collected can serve no build again.
  const forgotten = collected === null ? 0 : forgetCollected(workerLayout(context.env).evaluationsDir);
  return { removed, in_use: inUse, kept, collected, forgotten_records: forgotten };
}
