// The `nix` input group: Nix settings for every Nix call of a step (remote
// builders, extra binary caches, parallelism, any other setting) and where to
// deliver the built closure. Settings travel as `--option name value` argv
// pairs, printed in the logged command; nothing is written to nix.conf.
import { isAbsolute } from "node:path";
import { InputError } from "../core/errors.ts";
import { didYouMean } from "../core/suggest.ts";

/** The fields of the `nix` group, as flow.yaml's schema declares them (a test ties the two). */
export const NIX_SETTINGS_FIELDS = [
  "builders",
  "substituters",
  "trusted_public_keys",
  "max_jobs",
  "cores",
  "options",
  "publish_to",
  "substitute_on_destination",
] as const;

/** As given in the flow input (a web form or JSON): one optional property per field. */
export interface NixSettingsInput extends Partial<Record<(typeof NIX_SETTINGS_FIELDS)[number], unknown>> {
  builders?: string | null;
  substituters?: string[] | null;
  trusted_public_keys?: string[] | null;
  max_jobs?: number | string | null;
  cores?: number | null;
  options?: Record<string, unknown> | null;
  publish_to?: string[] | null;
  substitute_on_destination?: boolean | null;
}

export interface NixSettings {
  /** `--option name value` pairs, in order. */
  options: [string, string][];
  publishTo: string[];
  substituteOnDestination: boolean;
}

const SETTING_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
const STORE_URI = /^(?:[a-z][a-z0-9+.-]*:\/\/\S+|local(?:\?\S*)?|daemon|auto)$/;
const PUBLIC_KEY = /^[^\s:]+:[A-Za-z0-9+/]+={0,2}$/;
/** Settings that have a field of their own (or that the steps set). */
const TYPED: ReadonlyMap<string, string> = new Map([
  ["builders", "builders"],
  ["substituters", "substituters"],
  ["extra-substituters", "substituters"],
  ["trusted-public-keys", "trusted_public_keys"],
  ["extra-trusted-public-keys", "trusted_public_keys"],
  ["max-jobs", "max_jobs"],
  ["cores", "cores"],
  ["experimental-features", ""],
  ["extra-experimental-features", ""],
]);

/**
 * The settings `options` may carry: caching, substitution, parallelism and
 * timeouts. The rest of Nix's settings are refused: many name a program Nix
 * would run (post-build-hook, build-hook, diff-hook, plugin-files, ...), a
 * store or paths to expose to builds (store, sandbox-paths), or turn off a
 * protection (sandbox, require-sigs, allow-unsafe-native-code-during-evaluation,
 * accept-flake-config), as the worker's user, from a web form.
 */
export const ALLOWED_OPTIONS: readonly string[] = [
  "builders-use-substitutes",
  "compress-build-log",
  "connect-timeout",
  "download-attempts",
  "download-speed",
  "eval-cache",
  "fallback",
  "http-connections",
  "http2",
  "keep-going",
  "log-lines",
  "max-build-log-size",
  "max-silent-time",
  "max-substitution-jobs",
  "narinfo-cache-negative-ttl",
  "narinfo-cache-positive-ttl",
  "stalled-download-timeout",
  "substitute",
  "tarball-ttl",
  "timeout",
  "warn-dirty",
];

/** A setting value longer than this is refused: command lines have limits, and no setting needs more. */
const MAX_VALUE_BYTES = 16 * 1024;
/** At most this many entries in one list field. */
const MAX_LIST_ENTRIES = 100;

/** A value that stays one argument: no control characters, no word that reads as a flag, a bounded length. */
function settingValue(field: string, value: unknown): string {
  const text = typeof value === "number" || typeof value === "boolean" ? String(value) : value;
  if (typeof text !== "string") throw new InputError(field, value, "must be a string, number or boolean");
  if (Buffer.byteLength(text) > MAX_VALUE_BYTES) {
    throw new InputError(field, value, `is ${Buffer.byteLength(text)} bytes long; at most ${MAX_VALUE_BYTES} are accepted`);
  }
  if (/[\0-\x1f\x7f]/.test(text)) throw new InputError(field, value, "must not contain control characters (newlines included)");
  // A lone "-" is a placeholder in the builders syntax; "-x" and "--xyz" read as flags.
  if (text.split(/\s+/).some((word) => /^--?[A-Za-z]/.test(word))) {
    throw new InputError(field, value, "must not contain a word starting with '-': it would read as another command-line flag");
  }
  return text;
}

/**
 * The parameters a store URI may carry from the input: compression, caching
 * and S3 addressing. Others are refused by name: some name a program Nix runs
 * (remote-program, remote-store), files it reads (ssh-key, secret-key: a form
 * user could sign with the operator's key), or make the shared store trust a
 * cache's content (trusted).
 */
const ALLOWED_STORE_PARAMETERS: readonly string[] = [
  "buffer-size",
  "compression",
  "endpoint",
  "index-debug-info",
  "ls-compression",
  "multipart-upload",
  "narinfo-compression",
  "parallel-compression",
  "priority",
  "profile",
  "region",
  "root",
  "scheme",
  "want-mass-query",
  "write-nar-listing",
];

/** Refuses a store URI whose query names a parameter outside ALLOWED_STORE_PARAMETERS. */
/**
 * Whether a URI's host (with its user) starts with `-`: ssh and git take
 * such a word as an option of theirs (`ssh://-oProxyCommand=...` runs a
 * program), so no URI from the input may have one.
 */
export function hasOptionLikeHost(uri: string): boolean {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/.exec(uri)?.[1] ?? /^([^\s/@]+@[^\s/:]+):/.exec(uri)?.[1];
  return authority !== undefined && /^-|@-/.test(decodeURIComponentSafe(authority));
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function checkStoreParameters(field: string, uri: string): void {
  if (hasOptionLikeHost(uri)) {
    throw new InputError(field, uri, "names a host starting with '-', which ssh would take as an option of its own");
  }
  const query = uri.includes("?") ? uri.slice(uri.indexOf("?") + 1) : "";
  for (const pair of query.split("&").filter((p) => p !== "")) {
    let name: string;
    try {
      name = decodeURIComponent(pair.split("=")[0] ?? "");
    } catch {
      throw new InputError(field, uri, "has a malformed %-escape in its parameters");
    }
    if (!ALLOWED_STORE_PARAMETERS.includes(name)) {
      throw new InputError(
        field,
        uri,
        `has the parameter ${JSON.stringify(name)}, which the flow input may not set (it could run a program or read a file ` +
          `as the worker's user); allowed: ${ALLOWED_STORE_PARAMETERS.join(", ")}`,
      );
    }
  }
}

/** The builders setting: no `@file` (Nix would read that file), each machine's URI with allowed parameters only. */
function builders(field: string, value: unknown): string {
  const text = settingValue(field, value).trim();
  for (const machine of text.split(/[;\n]/).map((m) => m.trim())) {
    if (machine === "") continue;
    if (machine.startsWith("@")) {
      throw new InputError(field, value, 'must list machines: a "@file" would make Nix read that file on the worker');
    }
    const [uri = "", , key = "-"] = machine.split(/\s+/);
    checkStoreParameters(field, uri);
    // The third column names an SSH key file: the worker's own keys and config are what a machine may use.
    if (key !== "-") {
      throw new InputError(
        field,
        value,
        `names the SSH key ${JSON.stringify(key)}: leave that column "-" (the worker's SSH setup decides)`,
      );
    }
  }
  return text;
}

function list(field: string, value: unknown, pattern: RegExp, what: string): string[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new InputError(field, value, "must be a list");
  if (value.length > MAX_LIST_ENTRIES)
    throw new InputError(field, value, `has ${value.length} entries; at most ${MAX_LIST_ENTRIES} are accepted`);
  return value.flatMap((item, i) => {
    if (typeof item === "string" && item.trim() === "") return [];
    const text = settingValue(`${field}[${i}]`, item).trim();
    if (!pattern.test(text)) throw new InputError(`${field}[${i}]`, item, `is not ${what}`);
    checkStoreParameters(`${field}[${i}]`, text);
    return [text];
  });
}

function count(field: string, value: unknown, allowAuto: boolean): string | null {
  if (value === null || value === undefined || value === "") return null;
  if (allowAuto && value === "auto") return "auto";
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new InputError(field, value, `must be a whole number >= 0${allowAuto ? ' or "auto"' : ""}`);
  }
  return String(n);
}

/** What the worker's operator lets the input decide. */
export interface SettingsPolicy {
  /**
   * Whether trusted_public_keys may come from the input. A key trusted makes
   * the shared store accept whatever it signed, for every VM of the worker:
   * only an operator may allow it ($NIXOS_CLOSURE_ALLOW_INPUT_KEYS=1).
   */
  inputKeys: boolean;
}

/** Validates the `nix` group; throws InputError naming the field and value. */
export function nixSettings(input: unknown, field = "nix_settings", policy: SettingsPolicy = { inputKeys: false }): NixSettings {
  if (input === null || input === undefined) return { options: [], publishTo: [], substituteOnDestination: false };
  if (typeof input !== "object" || Array.isArray(input)) throw new InputError(field, input, "must be an object");
  for (const key of Object.keys(input)) {
    if (!(NIX_SETTINGS_FIELDS as readonly string[]).includes(key)) {
      throw new InputError(
        field,
        key,
        `is not a field of the nix group (${NIX_SETTINGS_FIELDS.join(", ")})${didYouMean(key, NIX_SETTINGS_FIELDS)}`,
      );
    }
  }
  const given = input as NixSettingsInput;
  const options: [string, string][] = [];

  if (given.builders !== null && given.builders !== undefined) {
    options.push(["builders", builders(`${field}.builders`, given.builders)]);
  }
  const substituters = list(
    `${field}.substituters`,
    given.substituters,
    STORE_URI,
    "a store URI (https://..., file:///..., s3://..., ssh://...)",
  );
  if (substituters.length > 0) options.push(["extra-substituters", substituters.join(" ")]);
  const keys = list(`${field}.trusted_public_keys`, given.trusted_public_keys, PUBLIC_KEY, "a public key (name:base64)");
  if (keys.length > 0 && !policy.inputKeys) {
    throw new InputError(
      `${field}.trusted_public_keys`,
      given.trusted_public_keys,
      "would make this worker's shared store trust what those keys signed, for every VM: " +
        "its operator allows that with NIXOS_CLOSURE_ALLOW_INPUT_KEYS=1, or lists the keys in nix.conf",
    );
  }
  if (keys.length > 0) options.push(["extra-trusted-public-keys", keys.join(" ")]);
  const maxJobs = count(`${field}.max_jobs`, given.max_jobs, true);
  if (maxJobs !== null) options.push(["max-jobs", maxJobs]);
  const cores = count(`${field}.cores`, given.cores, false);
  if (cores !== null) options.push(["cores", cores]);

  const extra = given.options ?? {};
  if (typeof extra !== "object" || Array.isArray(extra))
    throw new InputError(`${field}.options`, extra, "must be an object of setting: value");
  for (const [name, value] of Object.entries(extra)) {
    if (!SETTING_NAME.test(name)) {
      throw new InputError(
        `${field}.options`,
        name,
        "is not a Nix setting name (lower-case words joined by '-', e.g. connect-timeout)",
      );
    }
    const typed = TYPED.get(name);
    if (typed !== undefined)
      throw new InputError(`${field}.options`, name, typed ? `cannot be set here: use ${field}.${typed}` : "is set by the steps");
    if (!ALLOWED_OPTIONS.includes(name)) {
      throw new InputError(
        `${field}.options`,
        name,
        `is not a setting the flow input may set (it could run or expose programs or files as the worker's user); ` +
          `allowed: ${ALLOWED_OPTIONS.join(", ")}${didYouMean(name, ALLOWED_OPTIONS)}`,
      );
    }
    options.push([name, settingValue(`${field}.options.${name}`, value)]);
  }

  const publishTo = list(
    `${field}.publish_to`,
    given.publish_to,
    STORE_URI,
    "a store URI (ssh-ng://host, file:///dir, s3://bucket?..., local?root=/dir)",
  );
  for (const [i, uri] of publishTo.entries()) {
    const root = /^local\?(?:.*&)?root=([^&]*)/.exec(uri)?.[1];
    if (root === undefined) continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(root);
    } catch {
      throw new InputError(`${field}.publish_to[${i}]`, uri, "has a malformed %-escape in its root");
    }
    if (!isAbsolute(decoded)) {
      throw new InputError(`${field}.publish_to[${i}]`, uri, "names a relative root: use local?root=/absolute/dir");
    }
  }
  const onDestination = given.substitute_on_destination ?? false;
  if (typeof onDestination !== "boolean")
    throw new InputError(`${field}.substitute_on_destination`, onDestination, "must be true or false");
  return { options, publishTo, substituteOnDestination: onDestination };
}

/** The global arguments for these settings. */
export function settingsArgs(settings: NixSettings): string[] {
  return settings.options.flatMap(([name, value]) => ["--option", name, value]);
}
