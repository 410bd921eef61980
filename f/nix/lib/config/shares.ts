// virtiofs shares keyed by guest mount point, with the shares the contract
// adds (fstests, the home share).
import { isAbsolute, posix } from "node:path";
import { InputError } from "../core/errors.ts";
import { checkKeys, expectBoolean, expectString, isBlank, isEmptyRow, isPlainObject } from "./fields.ts";
import { BACKEND_MOUNT_POINTS, FSTESTS_SHARE, HOME_SHARE_TAG, MAX_TAG_BYTES, SHARE_FIELDS, type Share } from "./model.ts";

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
  checkKeys(field, value, SHARE_FIELDS, "a share");
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

export function shares(value: unknown, testSuites: readonly string[], home: string | null): Map<string, Share> {
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

export function homeDir(home: unknown, value: unknown, fallback: string): string | null {
  if (!expectBoolean("home", home, false)) return null;
  if (isBlank(value)) return fallback;
  return mountPoint("home_dir", expectString("home_dir", value).trim());
}
