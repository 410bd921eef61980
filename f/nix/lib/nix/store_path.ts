// Store paths computed the way Nix computes them, without asking Nix: the
// path a locked flake input is fetched to follows from its NAR hash alone.
import { createHash } from "node:crypto";

const STORE_DIR = "/nix/store";

/** A store path as Nix accepts one: the store, a 32-character base-32 hash, a name of Nix's characters. */
export const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;
/** Nix's base-32 alphabet (no e, o, u, t). */
const BASE32 = "0123456789abcdfghijklmnpqrsvwxyz";

/** Nix's printHash32: little-endian base 32 of a hash. */
function base32(hash: Uint8Array): string {
  const length = Math.ceil((hash.length * 8) / 5);
  let out = "";
  for (let n = length - 1; n >= 0; n--) {
    const bit = n * 5;
    const i = Math.floor(bit / 8);
    const j = bit % 8;
    const c = ((hash[i] ?? 0) >> j) | (i + 1 < hash.length ? (hash[i + 1] ?? 0) << (8 - j) : 0);
    out += BASE32[c & 0x1f];
  }
  return out;
}

/** Nix's compressHash: XOR-folds a hash to `size` bytes. */
function compress(hash: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  hash.forEach((byte, i) => {
    out[i % size] = (out[i % size] ?? 0) ^ byte;
  });
  return out;
}

/**
 * The store path of a flake input locked by `narHash` (SRI, `sha256-...`):
 * a fixed-output, recursively hashed path named `source`, as Nix fetches it.
 */
export function sourcePathOf(narHash: string): string | null {
  const match = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(narHash);
  if (!match) return null;
  const hex = Buffer.from(match[1] as string, "base64").toString("hex");
  const fingerprint = `source:sha256:${hex}:${STORE_DIR}:source`;
  const digest = createHash("sha256").update(fingerprint).digest();
  return `${STORE_DIR}/${base32(compress(digest, 20))}-source`;
}
