// prepare_root's core: a root directory whose store holds exactly the
// system's closure and the extra closures asked for (from the store, or as
// `nix-store --export` files), switched atomically to a complete new
// generation; or, with nix_build, a root built by Nix as a store path.
import { existsSync, mkdirSync, readlinkSync, realpathSync, renameSync, statfsSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { readBootInfo, readBootspec } from "../build/bootspec.ts";
import { MAX_PATH_BYTES } from "../build/root/export_file.ts";
import {
  claimGenerations,
  currentGeneration,
  generationDir,
  makeLockPlace,
  nextGeneration,
  pruneGenerations,
  type RootLayout,
  recordRoot,
  removeLeftovers,
  removeTree,
  rootLayout,
  switchTo,
} from "../build/root/generations.ts";
import { ROOT_BUILDER, ROOT_EXPRESSION, type RootSpec, registrationOf } from "../build/root/nix_build.ts";
import {
  directoryModes,
  populateStore,
  resolveInRoot,
  STORE_DIR,
  standardDirectories,
  systemLinks,
} from "../build/root/populate.ts";
import { kernelParamsOf } from "../config/render.ts";
import { checkRenderId } from "../config/render_identity.ts";
import { InputError, SetupError } from "../core/errors.ts";
import { readIfExists } from "../core/files.ts";
import { formatBytes, plural } from "../core/format.ts";
import { buildFile, closureInfo, dumpDb, importPaths, invalidPaths, loadDb } from "../nix/operations.ts";
import { STORE_PATH } from "../nix/store_path.ts";
import { isLockOursOrFree, lockPathFor, retireLock, withDirLock } from "../worker/dir_lock.ts";
import { existingConfigDir } from "../worker/layout.ts";
import type { Context } from "./context.ts";
import { type ClosureFile, checkRootRequest, closeRootRequest, type RootFields, type RootRequest } from "./root_request.ts";

export interface PrepareRootResult {
  config_dir: string;
  toplevel: string;
  init: string;
  initrd: string | null;
  /** For the guest's kernel command line: `systemd.hostname=<vm_name>` with hostname_at_boot, else none. */
  kernel_params: string[];
  /** The stable path of the root: a link switched between generations. */
  root_dir: string;
  /** What the host serves to the guest over virtiofs instead of /nix/store, read-only. */
  store_dir: string;
  /** The generation the root now points to. */
  generation: string;
  /** The same generation as a real directory, no symlink on its path: what to hand to Nix (`--store local?root=...`). */
  generation_dir: string;
  /** Store paths in the root: the union of the closures. */
  paths: number;
  nar_size: number;
  files_linked: number;
  files_copied: number;
  /** What each closure brought: its field, its store path or file, its paths, and those no closure before it had. */
  closures: ClosureContribution[];
  /** The root is a store path built by Nix (generation_dir), with /nix-path-registration instead of a database. */
  nix_build: boolean;
}

export interface ClosureContribution {
  field: string;
  source: string;
  paths: number;
  added: number;
}

/** The toplevel to put in the root: the one given, else the config dir's last build (its result link). */
function chosenToplevel(context: Context, configDir: string, given: string, files: readonly ClosureFile[]): string {
  const build = context.words.step("build_closure");
  if (given !== "") {
    if (!STORE_PATH.test(given)) throw new InputError("toplevel", given, "must be a store path such as build_closure returns");
    // A system may arrive as a file, from a host that built it.
    if (!existsSync(given) && !files.some((f) => f.paths.some((p) => p.path === given))) {
      throw new InputError("toplevel", given, `is neither in the store nor in a closure file (run ${build} first)`);
    }
    return given;
  }
  let target: string;
  try {
    target = readlinkSync(join(configDir, "result"));
  } catch {
    throw new SetupError(`${configDir} has no build yet (no result link): run ${build} first`);
  }
  if (!existsSync(target))
    throw new SetupError(`${configDir}/result points to ${target}, which is no longer in the store: run ${build} again`);
  return target;
}

interface Closures {
  /** Every path, with its NAR size. */
  sizes: Map<string, number>;
  /** The paths that come from this host's store, which are hard-linked (the rest are imported from files). */
  fromHost: string[];
  contributions: ClosureContribution[];
}

/** The closure of `top` in a references graph. */
function closureIn(graph: ReadonlyMap<string, readonly string[]>, top: string): Set<string> {
  const seen = new Set<string>();
  const pending = [top];
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    pending.push(...(graph.get(path) ?? []));
  }
  return seen;
}

/** The closures of the system and of the request, from this host's store (one Nix call) and from the files. */
async function gatherClosures(context: Context, system: string, request: RootRequest): Promise<Closures> {
  const onHost = existsSync(system);
  const hostTops = [
    ...(onHost ? [system] : []),
    ...request.closures.map((c) => c.path),
    ...(request.channel ? [request.channel] : []),
  ];
  const infos = hostTops.length === 0 ? [] : await closureInfo(await context.nix(), hostTops);
  const graph = new Map<string, readonly string[]>(infos.map((i) => [i.path, i.references]));
  const sizes = new Map(infos.map((i) => [i.path, i.narSize]));
  const fromHost = infos.map((i) => i.path);
  const fileGraph = new Map<string, readonly string[]>();
  for (const file of request.closureFiles) {
    for (const p of file.paths) {
      fileGraph.set(p.path, p.references);
      if (!sizes.has(p.path)) sizes.set(p.path, p.narSize);
    }
  }
  const seen = new Set<string>();
  const contribution = (field: string, source: string, paths: Set<string>): ClosureContribution => {
    const added = [...paths].filter((p) => !seen.has(p));
    for (const p of added) seen.add(p);
    return { field, source, paths: paths.size, added: added.length };
  };
  const contributions = [
    contribution("toplevel", system, closureIn(onHost ? graph : fileGraph, system)),
    ...request.closures.map((c) => contribution(c.field, c.path, closureIn(graph, c.path))),
    ...(request.channel ? [contribution("channel", request.channel, closureIn(graph, request.channel))] : []),
    ...request.closureFiles.map((f) => contribution(f.field, f.file, new Set(f.paths.map((p) => p.path)))),
  ];
  return { sizes, fromHost, contributions };
}

export async function prepareRoot(
  context: Context,
  configDir: string,
  toplevel: string,
  rootDir: string,
  fields: RootFields = {},
  renderId = "",
): Promise<PrepareRootResult> {
  const dir = existingConfigDir(configDir, context.words.step("render_config"), context.env);
  if (typeof toplevel !== "string")
    throw new InputError("toplevel", toplevel, "must be a store path such as build_closure returns");
  // The whole input is checked (export files read through) before anything is written.
  const request = checkRootRequest(fields);
  try {
    return await prepareChecked(context, dir, toplevel, rootDir, request, renderId);
  } finally {
    closeRootRequest(request);
  }
}

/** prepare_root once its input is checked, the closure files open. */
async function prepareChecked(
  context: Context,
  dir: string,
  toplevel: string,
  rootDir: string,
  request: RootRequest,
  renderId: string,
): Promise<PrepareRootResult> {
  if (toplevel !== "") chosenToplevel(context, dir, toplevel, request.closureFiles);
  const layout = rootLayout(dir, rootDir);
  // Nix is located (and asked about the store paths named) before anything is written: a worker without it fails here.
  await checkRegistered(context, request, toplevel);
  checkRoomFor(request, layout);
  // Checked now, so that a root that is not ours is refused before anything is created, and again under the locks.
  currentGeneration(layout);
  // Where others may make entries (a sticky directory), one may have made the root's lock file first.
  if (layout.lockDir !== dir && !lockOursOrFree(layout.lockDir)) {
    throw new InputError(
      "root_dir",
      layout.rootDir,
      `has a lock ${lockPathFor(layout.lockDir)} that is not ours (another user's, or not a lock of nixos-closure); ` +
        "nothing was changed: move it away or choose another root_dir",
    );
  }
  // The root's own lock sits beside it: two VMs asking for one root take turns, and the second is refused by
  // name. A root inside the config dir goes by the config dir's lock.
  makeLockPlace(layout);
  const holdingDir = { ...context, heldLocks: new Set([...context.heldLocks, dir]) };
  return withDirLock(dir, context, () =>
    withDirLock(layout.lockDir, holdingDir, async () => {
      checkRenderId(dir, renderId, context.step);
      // Earlier versions locked a root inside the config dir beside it, so inside the flake source: that file goes.
      if (layout.lockDir !== layout.rootDir) await retireLock(layout.rootDir, context);
      const system = chosenToplevel(context, dir, toplevel, request.closureFiles);
      const previous = currentGeneration(layout);
      // Recorded first: whatever is made of the root from here on, the VM's removal finds and takes it.
      recordRoot(layout);
      claimGenerations(layout);
      for (const { path, why } of removeLeftovers(layout)) {
        context.log.warn(`${path}, left by an interrupted run, could not be removed (the next run tries again): ${why}`);
      }
      const number = nextGeneration(layout);
      const generation = join(layout.generationsDir, String(number));
      const partial = `${generation}.partial`;

      const closures = await gatherClosures(context, system, request);
      const all = new Set(closures.sizes.keys());
      const narSize = [...closures.sizes.values()].reduce((n, size) => n + size, 0);
      context.log.info(
        `preparing ${layout.rootDir} (generation ${number}${request.nixBuild ? ", built by Nix" : ""}) with ` +
          `${plural(all.size, "store path")}, ${formatBytes(narSize)}`,
      );
      for (const c of closures.contributions) {
        context.log.info(`  ${c.field} ${c.source}: ${plural(c.paths, "path")}, ${c.added} not in the closures before it`);
      }
      try {
        const stats = request.nixBuild
          ? await buildRoot(context, partial, generation, { system, request, paths: closures.fromHost })
          : await linkRoot(context, partial, previous, { system, request, paths: closures.fromHost, all });
        // Read before the switch: a system whose bootspec cannot be read leaves the previous root in place.
        const boot = bootOf(system, partial);
        // A built root's generation is its out-link; the partial directory only held the expression and its data.
        if (request.nixBuild) removeTree(partial);
        else renameSync(partial, generation);
        switchTo(layout, generation);
        // The root has switched: pruning only tidies, so what it cannot remove is a warning, never the run's failure.
        const { removed, failed } = pruneGenerations(layout, [generation, ...(previous ? [previous] : [])]);
        for (const { path, why } of failed) context.log.warn(`${path} could not be removed (the next run tries again): ${why}`);
        context.log.info(
          `root ${layout.rootDir} -> ${generation}: ${plural(stats.linked, "file")} linked, ${stats.copied} copied, ` +
            `${plural(stats.reused, "path")} reused from the previous generation${removed.length > 0 ? `; removed ${removed.join(", ")}` : ""}`,
        );
        if (stats.linked > 0) {
          context.log.info(
            `serve ${join(layout.rootDir, STORE_DIR)} to the guest read-only: its files are hard links to the host's ${STORE_DIR}, ` +
              "so a guest that could write them would change the host's store",
          );
        }
        return {
          config_dir: dir,
          toplevel: system,
          ...boot,
          kernel_params: kernelParamsOf(readIfExists(join(dir, "default.nix")) ?? "", basename(dir)),
          root_dir: layout.rootDir,
          store_dir: join(layout.rootDir, STORE_DIR),
          generation,
          generation_dir: generationDir(generation),
          paths: all.size,
          nar_size: narSize,
          files_linked: stats.linked,
          files_copied: stats.copied,
          closures: closures.contributions,
          nix_build: request.nixBuild,
        };
      } catch (error) {
        removeTree(partial);
        throw error;
      }
    }),
  );
}

/** Whether the lock of `dir` is ours or not there; a path that cannot be looked at fails with its own message when locked. */
function lockOursOrFree(dir: string): boolean {
  try {
    return isLockOursOrFree(dir);
  } catch {
    return true;
  }
}

/**
 * init and initrd of the system, read from this host's store or, for a system
 * that came as a file, from `root`'s store. Such a system's files are data
 * from the file's author: its boot.json is resolved inside the root only (a
 * link out of it, to /etc/shadow say, is followed within the root, never on
 * the host), and read only from the root's store.
 */
function bootOf(system: string, root: string): { init: string; initrd: string | null } {
  if (existsSync(system)) {
    const boot = readBootInfo(system);
    return { init: boot.init, initrd: boot.initrd };
  }
  const named = join(system, "boot.json");
  let file: string;
  try {
    file = join(root, resolveInRoot(root, named));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { init: join(system, "init"), initrd: null };
    throw error;
  }
  return readBootspec(file, join(root, STORE_DIR), named) ?? { init: join(system, "init"), initrd: null };
}

/**
 * Refuses, before anything is written, a store path named in the input that
 * Nix has no record of (a directory left in the store by a failed build):
 * Nix would fail on it only once the root is half made.
 */
async function checkRegistered(context: Context, request: RootRequest, toplevel: string): Promise<void> {
  const named = [
    ...(toplevel !== "" && existsSync(toplevel) ? [{ field: "toplevel", path: toplevel }] : []),
    ...request.closures,
    ...(request.channel ? [{ field: "channel", path: request.channel }] : []),
  ];
  const invalid = new Set(await invalidPaths(await context.nix(), [...new Set(named.map((n) => n.path))]));
  const first = named.find((n) => invalid.has(n.path));
  if (first !== undefined) {
    throw new InputError(
      first.field,
      first.path,
      "is in the store directory but is not a valid store path (Nix has no record of it: a leftover of a failed build?)",
    );
  }
}

/** Generation numbers are short: room for ten digits. */
const PARTIAL_NAME = "/0000000000.partial";

/**
 * Refuses, before anything is written, closure files the root's file system
 * cannot take: paths that claim more than its free space (Nix writes every
 * byte), or a file whose path in the root would be longer than Linux allows.
 */
function checkRoomFor(request: RootRequest, layout: RootLayout): void {
  if (request.closureFiles.length === 0) return;
  let existing = layout.generationsDir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const { bavail, bsize } = statfsSync(existing);
  const free = bavail * bsize;
  // Nix is given the generation by its real path, to which it adds each path's own.
  const base = join(realpathSync(existing), relative(existing, layout.generationsDir)).length + PARTIAL_NAME.length;
  const seen = new Set<string>();
  let claimed = 0;
  for (const { field, file, paths } of request.closureFiles) {
    for (const { path, narSize, longestPath } of paths) {
      if (base + longestPath > MAX_PATH_BYTES) {
        throw new InputError(
          field,
          file,
          `holds a file whose path in the root would be ${base + longestPath} bytes long, more than the ${MAX_PATH_BYTES} Linux allows`,
        );
      }
      if (!seen.has(path)) claimed += narSize;
      seen.add(path);
    }
    if (claimed > free) {
      throw new InputError(
        field,
        file,
        `holds store paths of ${formatBytes(claimed)} (with the files before it), more than the ${formatBytes(free)} ` +
          `free on the file system of ${existing}, where the root is made`,
      );
    }
  }
}

interface RootContent {
  system: string;
  request: RootRequest;
  /** The paths of this host's store to put in the root. */
  paths: string[];
}

/**
 * The root made with file operations in `partial`: the host's paths hard-linked
 * (or copied) and registered with their own registrations, then each closure
 * file imported by Nix into the root's store, then the system's links.
 */
async function linkRoot(
  context: Context,
  partial: string,
  previous: string | null,
  content: RootContent & { all: ReadonlySet<string> },
): Promise<{ linked: number; copied: number; reused: number }> {
  const nix = await context.nix();
  standardDirectories(partial);
  const stats = populateStore(partial, content.paths, previous);
  const store = `local?root=${realpathSync(partial)}`;
  if (content.paths.length > 0) await loadDb(nix, store, await dumpDb(nix, content.paths));
  for (const file of content.request.closureFiles) {
    const imported = await importPaths(
      nix,
      store,
      { path: file.file, fd: file.fd, length: file.size },
      `importing ${file.field} ${file.file} into the root failed; the root was left as it was`,
    );
    // Nix reads what was checked, through the same descriptor, but the file's owner may have written to it since:
    // one that brings other paths than it held when checked is not used.
    const checked = file.paths.map((p) => p.path).sort();
    if (JSON.stringify([...imported].sort()) !== JSON.stringify(checked)) {
      throw new SetupError(
        `${file.field}: ${file.file} changed while it was read: Nix imported other paths than it held when checked; ` +
          "the root was left as it was",
      );
    }
  }
  // Asked of Nix, which finds the database by the store's URI: a root whose paths it does not see valid is never served.
  const named = [
    content.system,
    ...content.request.closures.map((c) => c.path),
    ...(content.request.channel ? [content.request.channel] : []),
  ];
  const invalid = await invalidPaths(nix, named, store);
  if (invalid.length > 0) {
    throw new SetupError(
      `Nix does not find ${invalid.join(", ")} valid in the root's store ${store} once registered; the root was left as it was`,
    );
  }
  directoryModes(partial);
  systemLinks(partial, content.system, content.request.channel, content.all);
  return stats;
}

/**
 * The root built by Nix as a store path, its out-link the generation (a GC
 * root); the expression and its data are written to `partial`, which goes
 * once the build is done. The shell is checked first, as for a linked root.
 */
async function buildRoot(
  context: Context,
  partial: string,
  generation: string,
  content: RootContent,
): Promise<{ linked: number; copied: number; reused: number }> {
  const nix = await context.nix();
  const shell = resolveInRoot("/", join(content.system, "sw", "bin", "sh"));
  if (!content.paths.includes(shell.split("/").slice(0, 4).join("/"))) {
    throw new SetupError(`${content.system}/sw/bin/sh resolves to ${shell}, which is not in the closure`);
  }
  const spec: RootSpec = {
    toplevel: content.system,
    closures: content.request.closures.map((c) => c.path),
    channel: content.request.channel ?? "",
    registration: registrationOf(await dumpDb(nix, content.paths)),
  };
  mkdirSync(partial, { mode: 0o755 });
  writeFileSync(join(partial, "root.nix"), ROOT_EXPRESSION);
  writeFileSync(join(partial, "build-root.sh"), ROOT_BUILDER);
  writeFileSync(join(partial, "spec.json"), `${JSON.stringify(spec)}\n`);
  const out = await buildFile(nix, join(partial, "root.nix"), { spec: join(partial, "spec.json") }, generation);
  context.log.info(`the root is the store path ${out}: copy it as any store path; load /nix-path-registration at first boot`);
  return { linked: 0, copied: 0, reused: 0 };
}
