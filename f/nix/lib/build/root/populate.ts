// A root directory whose store holds exactly its closures, laid out as
// nixos-prepare-root does (see the README, "A closure-only root"), made with
// file operations, without root powers.
import {
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { SetupError } from "../../core/errors.ts";

export const STORE_DIR = "/nix/store";

/** How the files of the root's store came to be. */
export interface MaterializeStats {
  /** Files hard-linked (from the previous generation or the host store). */
  linked: number;
  /** Files copied (with a reflink where the filesystem has them). */
  copied: number;
  /** Store paths taken from the previous generation. */
  reused: number;
}

function canLink(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return !["EXDEV", "EPERM", "EMLINK", "EACCES", "ENOTSUP", "EOPNOTSUPP"].includes(code ?? "");
}

/** Recreates one store object at `to`: hard links where allowed, else reflinked or plain copies. */
function materialize(from: string, to: string, stats: MaterializeStats, state: { link: boolean }): void {
  const stat = lstatSync(from);
  if (stat.isSymbolicLink()) {
    symlinkSync(readlinkSync(from), to);
  } else if (stat.isDirectory()) {
    mkdirSync(to, { mode: 0o755 });
    for (const entry of readdirSync(from)) materialize(join(from, entry), join(to, entry), stats, state);
    chmodSync(to, stat.mode & 0o7777);
  } else {
    if (state.link) {
      try {
        linkSync(from, to);
        stats.linked++;
        return;
      } catch (error) {
        if (canLink(error)) throw error;
        state.link = false; // not allowed here: copy from now on
      }
    }
    copyFileSync(from, to, constants.COPYFILE_FICLONE);
    chmodSync(to, stat.mode & 0o7777);
    stats.copied++;
  }
}

/** The directories nixos-prepare-root makes, with their modes. */
const STANDARD_DIRECTORIES: [string, number][] = [
  ["dev", 0o755],
  ["proc", 0o755],
  ["sys", 0o755],
  ["etc", 0o755],
  ["run", 0o755],
  ["home", 0o755],
  ["tmp", 0o1777],
  ["tmp/root", 0o755],
  ["var", 0o755],
  ["root", 0o700],
  ["bin", 0o755],
  ["nix/var/nix/gcroots", 0o755],
  ["nix/var/nix/temproots", 0o755],
  ["nix/var/nix/userpool", 0o755],
  ["nix/var/nix/profiles", 0o755],
  ["nix/var/nix/profiles/per-user", 0o1777],
  ["nix/var/nix/profiles/per-user/root", 0o755],
  ["nix/var/nix/db", 0o755],
  ["nix/var/log/nix/drvs", 0o755],
  ["nix/store", 0o1775],
];

/** Lays out the directories nixos-prepare-root makes, with their modes, in `root`, made here (never one found there). */
export function standardDirectories(root: string): void {
  mkdirSync(root, { mode: 0o755 });
  chmodSync(root, 0o755);
  for (const [dir] of STANDARD_DIRECTORIES) mkdirSync(join(root, dir), { recursive: true, mode: 0o755 });
  directoryModes(root);
  symlinkSync("/run", join(root, "var", "run"));
}

/** Sets the modes of the standard directories: again once Nix has opened the root's store, as Nix 2.8 resets per-user to 0755. */
export function directoryModes(root: string): void {
  for (const [dir, mode] of STANDARD_DIRECTORIES) chmodSync(join(root, dir), mode);
}

/** Copies the closure's store paths into `root`/nix/store, reusing the previous generation's files. */
export function populateStore(root: string, paths: readonly string[], previous: string | null): MaterializeStats {
  const stats: MaterializeStats = { linked: 0, copied: 0, reused: 0 };
  const store = join(root, "nix", "store");
  const hostState = { link: statSync(STORE_DIR).dev === statSync(store).dev };
  for (const path of paths) {
    const name = basename(path);
    const old = previous === null ? null : join(previous, "nix", "store", name);
    if (old !== null && existsSync(old)) {
      materialize(old, join(store, name), stats, { link: true });
      stats.reused++;
    } else {
      materialize(path, join(store, name), stats, hostState);
    }
  }
  return stats;
}

/**
 * Where `path` leads as the root sees it: every link followed inside the
 * root (an absolute target is read from the root, not from this host), so
 * that what is checked is the root's own store.
 */
export function resolveInRoot(root: string, path: string): string {
  let pending = path.split("/").filter((p) => p !== "" && p !== ".");
  let resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const [part = "", ...rest] = pending;
    pending = rest;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const here = join(root, ...resolved, part);
    const stat = lstatSync(here);
    if (stat.isSymbolicLink()) {
      if (++links > 40) throw new SetupError(`${path} leads through more than 40 links inside ${root}`);
      const target = readlinkSync(here);
      if (target.startsWith("/")) resolved = [];
      pending = [...target.split("/").filter((p) => p !== "" && p !== "."), ...pending];
    } else {
      resolved.push(part);
    }
  }
  return `/${resolved.join("/")}`;
}

/** A profile as Nix makes one: generation 1, `<name>-1-link` -> the store path, and `<name>` -> that generation. */
function setProfile(profile: string, storePath: string): void {
  symlinkSync(storePath, `${profile}-1-link`);
  symlinkSync(`${basename(profile)}-1-link`, profile);
}

/**
 * The system's links: /bin/sh from the closure, the system profile,
 * current-system, etc/NIXOS; with a channel, root's `channels` profile and
 * ~root/.nix-defexpr/channels, as nixos-prepare-root sets them. Read from the
 * root's own store, so that a system imported from a file needs nothing of this host's.
 */
export function systemLinks(root: string, toplevel: string, channel: string | null, closure: ReadonlySet<string>): void {
  let shell: string;
  try {
    shell = resolveInRoot(root, join(toplevel, "sw", "bin", "sh"));
  } catch {
    throw new SetupError(`${toplevel}/sw/bin/sh does not exist: the closure has no shell for /bin/sh`);
  }
  const owner = shell.split("/").slice(0, 4).join("/");
  if (!closure.has(owner)) throw new SetupError(`${toplevel}/sw/bin/sh resolves to ${shell}, which is not in the closure`);
  symlinkSync(shell, join(root, "bin", "sh"));
  const profiles = join(root, "nix", "var", "nix", "profiles");
  setProfile(join(profiles, "system"), toplevel);
  symlinkSync("/nix/var/nix/profiles/system", join(root, "run", "current-system"));
  writeFileSync(join(root, "etc", "NIXOS"), "");
  if (channel !== null) {
    setProfile(join(profiles, "per-user", "root", "channels"), channel);
    mkdirSync(join(root, "root", ".nix-defexpr"), { mode: 0o755 });
    chmodSync(join(root, "root", ".nix-defexpr"), 0o755);
    symlinkSync("/nix/var/nix/profiles/per-user/root/channels", join(root, "root", ".nix-defexpr", "channels"));
  }
}
