// Turns render_config's raw parameters into a GuestConfig, or throws an
// InputError that names the field and the value. Reads the disk (to check
// override directories and the managed key) but never writes.
import { readFileSync, statSync } from "node:fs";
import { isAbsolute, posix } from "node:path";
import { InputError } from "./errors.ts";
import {
  BACKEND_MOUNT_POINTS,
  CURATED_OVERRIDE_PACKAGES,
  DEFAULT_PROFILES,
  DEFAULT_TEST_SUITES,
  DEFAULT_USER_NAME,
  DEFAULT_VM_NAME,
  FSTESTS_SHARE,
  type GuestConfig,
  HOME_SHARE_TAG,
  MAX_TAG_BYTES,
  type OverrideInput,
  PROFILES,
  type RenderInput,
  type Share,
  type SourceOverride,
  TEST_SUITES,
} from "./inputs.ts";
import { isNixIdentifier } from "./nix_string.ts";

/** What validation needs from the worker besides the input. */
export interface ValidationContext {
  /** The managed VM key line, or null when the worker has none. */
  managedKey: { path: string; line: string } | null;
  /** Mount point of the home share when `home_dir` is empty. */
  defaultHome: string;
}

/** NixOS's networking.hostName pattern (see the library doc). */
const HOSTNAME = /^$|^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;
/** Linux account names as shadow-utils accepts them, dots included. */
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,30}[$]?$/;
const PACKAGE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const GIT_URL = /^(?:[a-z][a-z0-9+.-]*:\/\/\S+|[^\s/@]+@[^\s/:]+:\S+)$/;
const GIT_REF = /^[^\s\0~^:?*[\\]+$/;

const SSH_KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ssh-dss",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

function isBlank(value: unknown): boolean {
  return value === null || value === undefined || (typeof value === "string" && value.trim() === "");
}

function isEmptyRow(value: unknown): boolean {
  if (isBlank(value)) return true;
  if (typeof value !== "object" || Array.isArray(value)) return false;
  return Object.values(value as object).every(
    (v) => isBlank(v) || (Array.isArray(v) && v.length === 0) || (isPlainObject(v) && isEmptyRow(v)),
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function expectString(field: string, value: unknown): string {
  if (typeof value !== "string") throw new InputError(field, value, "must be a string");
  if (value.includes("\0")) throw new InputError(field, value, "must not contain a NUL character");
  return value;
}

/** A list input: null/undefined means the default, [] means none; blank rows are dropped. */
function listOf(field: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === null || value === undefined) return [...fallback];
  if (!Array.isArray(value)) throw new InputError(field, value, "must be a list");
  return value.flatMap((item, i) => (isBlank(item) ? [] : [expectString(`${field}[${i}]`, item).trim()]));
}

function oneOf<T extends string>(field: string, value: unknown, fallback: readonly T[], allowed: readonly T[]): T[] {
  const items = listOf(field, value, fallback);
  for (const [i, item] of items.entries()) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new InputError(`${field}[${i}]`, item, `is not one of: ${allowed.join(", ")}`);
    }
  }
  return [...new Set(items)] as T[];
}

export function validateVmName(value: unknown): string {
  if (isBlank(value)) return DEFAULT_VM_NAME;
  const name = expectString("vm_name", value);
  if (!HOSTNAME.test(name)) {
    throw new InputError(
      "vm_name",
      name,
      "is not a valid NixOS host name: use letters, digits, '-' and '_' (at most 63 characters, " +
        "starting and ending with a letter or digit); it is also the config directory's name",
    );
  }
  return name;
}

function validateUserName(value: unknown): string {
  if (isBlank(value)) return DEFAULT_USER_NAME;
  const name = expectString("user_name", value);
  if (!USER_NAME.test(name)) {
    throw new InputError(
      "user_name",
      name,
      "is not a valid Linux account name: start with a lower-case letter or '_', then lower-case letters, " +
        "digits, '_', '-' or '.' (at most 32 characters)",
    );
  }
  if (name === "root") throw new InputError("user_name", name, "is the administrator account; name an unprivileged user");
  return name;
}

/** Checks one OpenSSH public key line; returns it trimmed. */
export function validateSshKey(field: string, value: unknown): string {
  const line = expectString(field, value).trim();
  const [type = "", blob = "", ...comment] = line.split(/[ \t]+/);
  const fail = (why: string): never => {
    throw new InputError(field, value, `is not an OpenSSH public key line ("<type> <base64> [comment]"): ${why}`);
  };
  if (/[\r\n]/.test(line)) fail("it spans more than one line");
  if (/[\0-\x08\x0b-\x1f\x7f]/.test(line)) fail("it contains control characters");
  if (!SSH_KEY_TYPES.has(type)) fail(`unknown key type ${JSON.stringify(type)} (known: ${[...SSH_KEY_TYPES].join(", ")})`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) fail("the key data is not base64");
  const bytes = Buffer.from(blob, "base64");
  const nameLength = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  const embedded =
    nameLength >= 0 && nameLength <= bytes.length - 4 ? bytes.subarray(4, 4 + nameLength).toString("latin1") : null;
  if (embedded !== type) fail(`the key data is for ${JSON.stringify(embedded)}, not ${JSON.stringify(type)}`);
  return [type, blob, ...comment].join(" ");
}

function sshKeys(value: unknown, managed: ValidationContext["managedKey"]): string[] {
  const given = listOf("ssh_keys", value, []).map((key, i) => validateSshKey(`ssh_keys[${i}]`, key));
  const all = managed ? [validateSshKey(`managed key ${managed.path}`, managed.line), ...given] : given;
  const seen = new Set<string>();
  // One entry per key material: the same key with another comment is a duplicate.
  return all.filter((key) => {
    const material = key.split(" ").slice(0, 2).join(" ");
    if (seen.has(material)) return false;
    seen.add(material);
    return true;
  });
}

function mountPoint(field: string, value: string): string {
  if (!isAbsolute(value)) throw new InputError(field, value, "must be an absolute path (the guest mount point)");
  if (value.split("/").includes("..")) throw new InputError(field, value, "must not contain '..'");
  const normalized = posix.normalize(value).replace(/(.)\/+$/, "$1");
  if ((BACKEND_MOUNT_POINTS as readonly string[]).includes(normalized)) {
    throw new InputError(
      field,
      value,
      `belongs to the imageless backend (${BACKEND_MOUNT_POINTS.join(", ")}); choose another mount point`,
    );
  }
  return normalized;
}

function share(field: string, value: unknown): Share {
  if (!isPlainObject(value)) throw new InputError(field, value, 'must be an object like {"tag": "x", "options": ["ro"]}');
  const tag = isBlank(value.tag) ? "" : expectString(`${field}.tag`, value.tag).trim();
  if (tag === "") throw new InputError(`${field}.tag`, value.tag ?? "", "must not be empty: it names the virtiofs export");
  if (Buffer.byteLength(tag) > MAX_TAG_BYTES) {
    throw new InputError(`${field}.tag`, tag, `is longer than ${MAX_TAG_BYTES} bytes (the virtio-fs tag limit)`);
  }
  if (/[\s\0-\x1f\x7f]/.test(tag)) throw new InputError(`${field}.tag`, tag, "must not contain spaces or control characters");
  const options = value.options ?? [];
  if (!Array.isArray(options)) throw new InputError(`${field}.options`, options, "must be a list of strings");
  return {
    tag,
    options: options.flatMap((option, i) => {
      if (typeof option !== "string") throw new InputError(`${field}.options[${i}]`, option, "must be a string");
      return isBlank(option) ? [] : [expectString(`${field}.options[${i}]`, option).trim()];
    }),
  };
}

function shares(value: unknown, testSuites: readonly string[], home: string | null): Map<string, Share> {
  if (value !== null && value !== undefined && !isPlainObject(value)) {
    throw new InputError("shares", value, 'must be an object keyed by guest mount point: {"/mnt/x": {"tag": "x"}}');
  }
  const result = new Map<string, Share>();
  for (const [key, raw] of Object.entries(value ?? {})) {
    if (isBlank(key) && isEmptyRow(raw)) continue;
    const field = `shares[${JSON.stringify(key)}]`;
    if (isBlank(key)) throw new InputError(field, raw, "has an empty mount point");
    const point = mountPoint(field, key.trim());
    if (result.has(point)) throw new InputError(field, key, `names the mount point ${point} twice`);
    result.set(point, share(field, raw));
  }
  if (testSuites.includes("fstests") && !result.has(FSTESTS_SHARE.mountPoint)) {
    result.set(FSTESTS_SHARE.mountPoint, { tag: FSTESTS_SHARE.tag, options: [] });
  }
  if (home !== null && !result.has(home)) result.set(home, { tag: HOME_SHARE_TAG, options: [] });
  return result;
}

function homeDir(home: unknown, value: unknown, fallback: string): string | null {
  if (home !== null && home !== undefined && typeof home !== "boolean")
    throw new InputError("home", home, "must be true or false");
  if (home !== true) return null;
  if (isBlank(value)) return fallback;
  return mountPoint("home_dir", expectString("home_dir", value).trim());
}

function override(field: string, value: unknown, curated: boolean): SourceOverride {
  if (!isPlainObject(value)) throw new InputError(field, value, 'must be an object like {"pkg": "fio", "src": "/src/fio"}');
  const pkg = isBlank(value.pkg) ? "" : expectString(`${field}.pkg`, value.pkg).trim();
  if (!PACKAGE_NAME.test(pkg) || !isNixIdentifier(pkg)) {
    throw new InputError(`${field}.pkg`, value.pkg ?? "", "is not a nixpkgs package attribute name (letters, digits, '-', '_')");
  }
  if (curated && !(CURATED_OVERRIDE_PACKAGES as readonly string[]).includes(pkg)) {
    throw new InputError(
      `${field}.pkg`,
      pkg,
      `is not one of the curated packages (${CURATED_OVERRIDE_PACKAGES.join(", ")}); use extra_overrides for any other package`,
    );
  }
  if (isBlank(value.src))
    throw new InputError(`${field}.src`, value.src ?? "", "is required: an absolute directory or a git URL");
  const src = expectString(`${field}.src`, value.src).trim();
  const ref = isBlank(value.ref) ? null : expectString(`${field}.ref`, value.ref).trim();
  let kind: SourceOverride["kind"];
  if (isAbsolute(src)) {
    kind = "path";
    if (ref !== null)
      throw new InputError(
        `${field}.ref`,
        ref,
        `cannot be used with a directory src (${src}); a ref selects a git branch or tag`,
      );
    let isDirectory = false;
    try {
      isDirectory = statSync(src).isDirectory();
    } catch {}
    if (!isDirectory) throw new InputError(`${field}.src`, src, "is not an existing directory on this worker");
  } else if (GIT_URL.test(src)) {
    kind = "git";
    if (ref !== null && !GIT_REF.test(ref)) throw new InputError(`${field}.ref`, ref, "is not a valid git ref name");
  } else {
    throw new InputError(
      `${field}.src`,
      src,
      "must be an absolute directory or a git URL (https://..., ssh://..., git@host:path)",
    );
  }
  const attrs = value.attrs ?? {};
  if (!isPlainObject(attrs))
    throw new InputError(`${field}.attrs`, attrs, 'must be an object of strings, e.g. {"autoreconfPhase": "make configure"}');
  for (const [name, attr] of Object.entries(attrs)) {
    if (!isNixIdentifier(name))
      throw new InputError(`${field}.attrs`, name, "is not a Nix attribute name usable in overrideAttrs");
    if (name === "src") throw new InputError(`${field}.attrs`, name, "is set by the override itself (from src)");
    if (typeof attr !== "string") throw new InputError(`${field}.attrs.${name}`, attr, "must be a string");
    expectString(`${field}.attrs.${name}`, attr);
  }
  return { pkg, src, kind, ref, attrs: { ...(attrs as Record<string, string>) } };
}

function overrides(curatedValue: unknown, extraValue: unknown): SourceOverride[] {
  const rows = (field: string, value: unknown, curated: boolean): SourceOverride[] => {
    if (value === null || value === undefined) return [];
    if (!Array.isArray(value)) throw new InputError(field, value, "must be a list of {pkg, src, ref?, attrs?}");
    return value.flatMap((row: OverrideInput, i) => (isEmptyRow(row) ? [] : [override(`${field}[${i}]`, row, curated)]));
  };
  const all = [...rows("overrides", curatedValue, true), ...rows("extra_overrides", extraValue, false)];
  const seen = new Set<string>();
  for (const o of all) {
    if (seen.has(o.pkg))
      throw new InputError("overrides", o.pkg, "is overridden twice (in overrides and extra_overrides together)");
    seen.add(o.pkg);
  }
  return all;
}

/** Validates and composes render_config's input; throws InputError on the first problem. */
export function composeGuest(input: RenderInput, context: ValidationContext): GuestConfig {
  const vmName = validateVmName(input.vm_name);
  const userName = validateUserName(input.user_name);
  const profiles = oneOf("profiles", input.profiles, DEFAULT_PROFILES, PROFILES);
  const testSuites = oneOf("test_suites", input.test_suites, DEFAULT_TEST_SUITES, TEST_SUITES);
  const rootHome = homeDir(input.home, input.home_dir, context.defaultHome);
  return {
    vmName,
    userName,
    profiles,
    testSuites,
    sshKeys: sshKeys(input.ssh_keys, context.managedKey),
    shares: shares(input.shares, testSuites, rootHome),
    rootHome,
    overrides: overrides(input.overrides, input.extra_overrides),
  };
}

/** Reads the managed VM key when the worker has one. */
export function readManagedKey(path: string): ValidationContext["managedKey"] {
  try {
    return { path, line: readFileSync(path, "utf8").trim() };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}
