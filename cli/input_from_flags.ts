// The flow input ({guest, closure, lock, root, nix}) from an --input file and the
// command-line flags that mirror it; flags override the file field by field.
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { CURATED_OVERRIDE_PACKAGES } from "../f/nix/lib/config/model.ts";
import { keyLinesOfFile, PRIVATE_KEY } from "../f/nix/lib/config/ssh_keys.ts";
import { InputError } from "../f/nix/lib/core/errors.ts";
import { fileSystemMessage, isFileSystemError, readSmallFile } from "../f/nix/lib/core/files.ts";
import type { FlowInput } from "./flow.ts";

export interface FlowFlags {
  input?: string;
  vmName?: string;
  user?: string;
  sshKey?: string[];
  sshKeyFile?: string[];
  share?: string[];
  home?: boolean;
  homeDir?: string;
  hostnameAtBoot?: boolean;
  profile?: string[];
  testSuite?: string[];
  override?: string[];
  optionalOverride?: string[];
  updateLock?: boolean;
  nixosFlake?: string;
  prepareRoot?: boolean;
  rootDir?: string;
  closure?: string[];
  closureFile?: string[];
  channel?: string;
  nixBuild?: boolean;
  builders?: string;
  substituter?: string[];
  trustedPublicKey?: string[];
  maxJobs?: string;
  cores?: string;
  option?: string[];
  /** false with --no-eval-cache. */
  evalCache?: boolean;
  publishTo?: string[];
  substituteOnDestination?: boolean;
}

/** The flag that sets each field of the flow input, group by group: the flow's schema seen from the command line (a test ties the two). */
export const FLAG_OF_FIELD = {
  guest: {
    vm_name: "--vm-name",
    user_name: "--user",
    ssh_keys: "--ssh-key",
    shares: "--share",
    home: "--home",
    home_dir: "--home-dir",
    hostname_at_boot: "--hostname-at-boot",
  },
  closure: {
    profiles: "--profile",
    test_suites: "--test-suite",
    overrides: "--override",
    extra_overrides: "--override",
    nixos_flake: "--nixos-flake",
  },
  lock: { update_lock: "--update-lock" },
  root: {
    prepare: "--prepare-root",
    dir: "--root-dir",
    closures: "--closure",
    closure_files: "--closure-file",
    channel: "--channel",
    nix_build: "--nix-build",
  },
  nix: {
    builders: "--builders",
    substituters: "--substituter",
    trusted_public_keys: "--trusted-public-key",
    max_jobs: "--max-jobs",
    cores: "--cores",
    options: "--option",
    publish_to: "--publish-to",
    substitute_on_destination: "--substitute-on-destination",
  },
} as const;

const GROUPS = Object.keys(FLAG_OF_FIELD);

/** A flow input is a few kilobytes; a file much larger is not one. */
const MAX_INPUT_FILE_BYTES = 1024 * 1024;

function readInputFile(path: string): FlowInput {
  let text: string;
  try {
    text = readSmallFile(path, MAX_INPUT_FILE_BYTES);
  } catch (error) {
    const why = isFileSystemError(error) ? fileSystemMessage(error) : (error as Error).message;
    throw new InputError("--input", path, `cannot be read: ${why}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not quoted: the file given may be anything (JSON.parse's message shows its first bytes).
    throw new InputError("--input", path, "is not JSON (check it with `jq . FILE`)");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InputError("--input", path, "must hold a flow input object: {guest, closure, lock, root, nix}");
  }
  for (const [key, value] of Object.entries(parsed)) {
    if (!(GROUPS as readonly string[]).includes(key)) {
      throw new InputError(`--input ${path}`, key, `is not a flow input group (${GROUPS.join(", ")})`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new InputError(`--input ${path}: ${key}`, value, "must be an object");
    }
  }
  return parsed as FlowInput;
}

/** `MOUNT=TAG[:opt,...]` */
export function parseShare(spec: string): [string, { tag: string; options: string[] }] {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new InputError("--share", spec, "must look like MOUNT=TAG[:opt,...], e.g. /mnt/linux=linux:ro");
  const mount = spec.slice(0, eq);
  const rest = spec.slice(eq + 1);
  const colon = rest.indexOf(":");
  const tag = colon < 0 ? rest : rest.slice(0, colon);
  const options =
    colon < 0
      ? []
      : rest
          .slice(colon + 1)
          .split(",")
          .filter((o) => o !== "");
  return [mount, { tag, options }];
}

/** How a directory is asked to be taken, in Nix's own words: `path:DIR` whole, `git+file://DIR` as git takes it. */
const KIND_PREFIXES: readonly (readonly [string, "path" | "git"])[] = [
  ["path:", "path"],
  ["git+file://", "git"],
  ["git+file:", "git"],
];

/**
 * `PKG=SRC[#REF]`; a ref only after a git URL (an absolute path keeps any
 * '#'). A directory that is a git work tree gives its tracked files;
 * `PKG=path:DIR` the whole directory, `PKG=git+file://DIR` insists on git.
 */
export function parseOverride(spec: string): { pkg: string; src: string; kind?: "path" | "git"; ref?: string } {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new InputError("--override", spec, "must look like PKG=SRC[#REF], e.g. fio=/home/me/src/fio");
  const pkg = spec.slice(0, eq);
  const target = spec.slice(eq + 1);
  const prefix = KIND_PREFIXES.find(([word]) => target.startsWith(word) && isAbsolute(target.slice(word.length)));
  if (prefix !== undefined) return { pkg, src: target.slice(prefix[0].length), kind: prefix[1] };
  const hash = target.lastIndexOf("#");
  if (isAbsolute(target) || hash < 0) return { pkg, src: target };
  return { pkg, src: target.slice(0, hash), ref: target.slice(hash + 1) };
}

/** `NAME=VALUE` of --option. */
function parseOption(spec: string): [string, string] {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new InputError("--option", spec, "must look like NAME=VALUE, e.g. connect-timeout=5");
  return [spec.slice(0, eq), spec.slice(eq + 1)];
}

/** A key file is small: anything larger (or a device, a pipe) is not one. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

function sshKeysFromFile(path: string): string[] {
  let text: string;
  try {
    text = readSmallFile(path, MAX_KEY_FILE_BYTES);
  } catch (error) {
    const why = isFileSystemError(error) ? fileSystemMessage(error) : (error as Error).message;
    throw new InputError(
      "--ssh-key-file",
      path,
      `cannot be read as a public key file: ${why}; give the .pub file of a key pair (make one with \`ssh-keygen -t ed25519\`)`,
    );
  }
  if (PRIVATE_KEY.test(text)) {
    const pub = `${path}.pub`;
    throw new InputError("--ssh-key-file", path, `is a private key; give the .pub file${existsSync(pub) ? ` (${pub})` : ""}`);
  }
  return keyLinesOfFile("--ssh-key-file", path, text);
}

/** `none` stands for the explicit empty list. */
function listFlag(values: string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  return values.length === 1 && values[0] === "none" ? [] : values;
}

export function flowInputFromFlags(flags: FlowFlags): FlowInput {
  const base = flags.input ? readInputFile(flags.input) : {};
  const guest: Record<string, unknown> = { ...base.guest };
  const closure: Record<string, unknown> = { ...base.closure };
  const lock: Record<string, unknown> = { ...base.lock };
  const root: Record<string, unknown> = { ...base.root };
  const nix: Record<string, unknown> = { ...base.nix };

  if (flags.vmName !== undefined) guest.vm_name = flags.vmName;
  if (flags.user !== undefined) guest.user_name = flags.user;
  if (flags.sshKey !== undefined || flags.sshKeyFile !== undefined) {
    guest.ssh_keys = [...(flags.sshKey ?? []), ...(flags.sshKeyFile ?? []).flatMap(sshKeysFromFile)];
  }
  if (flags.share !== undefined) guest.shares = Object.fromEntries(flags.share.map(parseShare));
  if (flags.home !== undefined) guest.home = flags.home;
  if (flags.homeDir !== undefined) guest.home_dir = flags.homeDir;
  if (flags.hostnameAtBoot !== undefined) guest.hostname_at_boot = flags.hostnameAtBoot;

  const profiles = listFlag(flags.profile);
  if (profiles !== undefined) closure.profiles = profiles;
  const suites = listFlag(flags.testSuite);
  if (suites !== undefined) closure.test_suites = suites;
  if (flags.override !== undefined || flags.optionalOverride !== undefined) {
    const all = [
      ...(flags.override ?? []).map(parseOverride),
      ...(flags.optionalOverride ?? []).map((spec) => ({ ...parseOverride(spec), optional: true })),
    ];
    const curated = (o: { pkg: string }) => (CURATED_OVERRIDE_PACKAGES as readonly string[]).includes(o.pkg);
    closure.overrides = all.filter(curated);
    closure.extra_overrides = all.filter((o) => !curated(o));
  }
  if (flags.nixosFlake !== undefined) {
    // A directory may be given relative to here; anything else is a flake reference for Nix.
    closure.nixos_flake = existsSync(flags.nixosFlake) ? resolve(flags.nixosFlake) : flags.nixosFlake;
  }
  if (flags.updateLock !== undefined) lock.update_lock = flags.updateLock;
  if (flags.prepareRoot !== undefined) root.prepare = flags.prepareRoot;
  if (flags.rootDir !== undefined) root.dir = flags.rootDir;
  if (flags.closure !== undefined) root.closures = flags.closure;
  // A file may be given relative to here.
  if (flags.closureFile !== undefined) root.closure_files = flags.closureFile.map((file) => resolve(file));
  if (flags.channel !== undefined) root.channel = flags.channel;
  if (flags.nixBuild !== undefined) root.nix_build = flags.nixBuild;

  if (flags.builders !== undefined) nix.builders = flags.builders;
  if (flags.substituter !== undefined) nix.substituters = flags.substituter;
  if (flags.trustedPublicKey !== undefined) nix.trusted_public_keys = flags.trustedPublicKey;
  if (flags.maxJobs !== undefined) nix.max_jobs = flags.maxJobs;
  if (flags.cores !== undefined) nix.cores = flags.cores;
  if (flags.option !== undefined)
    nix.options = { ...(nix.options as object), ...Object.fromEntries(flags.option.map(parseOption)) };
  if (flags.evalCache === false) nix.options = { ...(nix.options as object), "eval-cache": "false" };
  if (flags.publishTo !== undefined) nix.publish_to = flags.publishTo;
  if (flags.substituteOnDestination !== undefined) nix.substitute_on_destination = flags.substituteOnDestination;

  return { guest, closure, lock, root, nix };
}
