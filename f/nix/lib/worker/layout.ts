// Where things live on a worker, from the environment variables of the
// contract (see the README, "Where things live").
import { existsSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { SetupError } from "../core/errors.ts";
import { realPathOf, redirectable } from "../core/files.ts";
import type { Env } from "../core/process.ts";

export interface Layout {
  systemDir: string;
  /** `$WORKERS_DIR/$WORKER_INDEX/nix`: every per-VM config dir is inside. */
  nixDir: string;
  /** The nixos-flake library: `$NIXOS_FLAKE_DIR` or `$VENDOR_DIR/nixos-flake`. */
  libraryDir: string;
  /** `$WORKERS_DIR/evaluations`: the evaluation records every VM of every slot shares (the slots share one store). */
  evaluationsDir: string;
}

function absoluteVariable(env: Env, name: string, fallback?: string): string {
  const value = env[name] || fallback;
  if (!value) throw new SetupError(`${name} is not set: a worker needs it (see the README, "Where things live")`);
  if (!isAbsolute(value)) throw new SetupError(`${name}=${JSON.stringify(value)} must be an absolute path`);
  return resolve(value);
}

export function workerLayout(env: Env): Layout {
  const workersDir = absoluteVariable(env, "WORKERS_DIR");
  const workerIndex = env.WORKER_INDEX ?? "";
  if (!/^\d+$/.test(workerIndex)) {
    throw new SetupError(`WORKER_INDEX=${JSON.stringify(workerIndex)} must be a worker slot number (0, 1, ...)`);
  }
  const workbenchDir = absoluteVariable(env, "WORKBENCH_DIR", dirname(workersDir));
  const systemDir = absoluteVariable(env, "SYSTEM_DIR", join(workbenchDir, "system"));
  const vendorDir = absoluteVariable(env, "VENDOR_DIR", join(dirname(workbenchDir), "vendor"));
  const libraryDir = absoluteVariable(env, "NIXOS_FLAKE_DIR", join(vendorDir, "nixos-flake"));
  // Another user who could make the worker's directory lead elsewhere would choose every file a step reads and writes.
  const redirect = redirectable(join(workersDir, workerIndex, "nix"));
  if (redirect !== null) {
    throw new SetupError(
      `WORKERS_DIR=${workersDir} is in no safe place: ${redirect}, so another user could make it lead to their files; ` +
        "give a directory only this user and root may write",
    );
  }
  // By its real path: a WORKERS_DIR or home reached through a link gives every lock and record one path.
  return {
    systemDir,
    nixDir: realPathOf(join(workersDir, workerIndex, "nix")),
    libraryDir,
    evaluationsDir: realPathOf(join(workersDir, "evaluations")),
  };
}

/**
 * The caches kept beside a config dir (answers Nix gave about it, keyed by
 * what they depend on): a step reuses them, and they go with the VM.
 */
export function configDirCaches(dir: string) {
  return {
    /** What lock_config last left: flake.nix and flake.lock, and the Nix that locked them. */
    locked: `${dir}.locked.json`,
    /** The override check's reports, by the files they were made from. */
    overrides: `${dir}.overrides.json`,
    /** The closure of the last toplevel built, with its sizes. */
    closure: `${dir}.closure.json`,
    /** The key of the VM's last build, part by part: what changed when the next one evaluates. */
    evaluation: `${dir}.evaluation.json`,
  };
}

/** The config dir of a VM; the name was validated, this re-checks containment. */
export function configDirFor(layout: Layout, vmName: string): string {
  const dir = resolve(layout.nixDir, vmName);
  const rel = relative(layout.nixDir, dir);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel) || rel.includes("/")) {
    throw new SetupError(`vm_name ${JSON.stringify(vmName)} does not name a directory inside ${layout.nixDir}`);
  }
  return dir;
}

export function managedKeyPath(layout: Layout): string {
  return join(layout.systemDir, "ssh", "id_ed25519.pub");
}

/** The operator's home for the home share: `$HOME` when under /home/. */
export function operatorHome(env: Env, fallback: string): string {
  const home = resolve("/", env.HOME ?? "");
  return home.startsWith("/home/") ? home : fallback;
}

/**
 * A config dir given to lock/build: absolute, existing, holding flake.nix,
 * and (when the worker's slot is known) one of its VMs' config dirs by its
 * real path, so that no step writes beside another directory; `render`
 * names what makes one.
 */
export function existingConfigDir(value: unknown, render: string, env?: Env): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new SetupError(`config_dir ${JSON.stringify(value)} must be the directory ${render} made`);
  }
  if (!isAbsolute(value))
    throw new SetupError(`config_dir ${JSON.stringify(value)} must be an absolute path (path: does not expand ~)`);
  const dir = resolve(value);
  if (!existsSync(dir)) throw new SetupError(`config_dir ${dir} does not exist: run ${render} first`);
  if (!existsSync(join(dir, "flake.nix"))) throw new SetupError(`config_dir ${dir} holds no flake.nix: run ${render} first`);
  if (env?.WORKERS_DIR && env.WORKER_INDEX) {
    const nixDir = realpathSync(workerLayout(env).nixDir);
    const real = realpathSync(dir);
    if (dirname(real) !== nixDir) {
      throw new SetupError(`config_dir ${dir} is not a VM config dir of this worker (in ${nixDir}): give the one ${render} made`);
    }
    return real;
  }
  return dir;
}
