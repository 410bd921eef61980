// OpenSSH public key lines: checked for type and data before they reach a
// NixOS option, and de-duplicated by key material.
import { InputError } from "../core/errors.ts";
import { expectString, listOf } from "./fields.ts";

/** The worker's managed VM key, as read from its file. */
export interface ManagedKey {
  path: string;
  line: string;
}

const SSH_KEY_TYPES: ReadonlySet<string> = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ssh-dss",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

/** The first line of a private key file (PEM, OpenSSH's own, PuTTY's). */
export const PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^PuTTY-User-Key-File-/m;

/**
 * Why a line is not an OpenSSH public key line, or null when it is one.
 * `quote`: the reason may show parts of the line (it was given as a key);
 * a line read from a file is never quoted (the file may be anything).
 */
function keyLineProblem(line: string, quote: boolean): string | null {
  const [type = "", blob = ""] = line.split(/[ \t]+/);
  const shown = (text: string | null) => (quote ? ` ${JSON.stringify(text)}` : "");
  if (/[\r\n]/.test(line)) return "it spans more than one line";
  if (/[\0-\x08\x0b-\x1f\x7f]/.test(line)) return "it contains control characters";
  if (!SSH_KEY_TYPES.has(type)) return `unknown key type${shown(type)} (known: ${[...SSH_KEY_TYPES].join(", ")})`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) return "the key data is not base64";
  const bytes = Buffer.from(blob, "base64");
  const nameLength = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  const embedded =
    nameLength >= 0 && nameLength <= bytes.length - 4 ? bytes.subarray(4, 4 + nameLength).toString("latin1") : null;
  if (embedded !== type)
    return quote
      ? `the key data is for ${JSON.stringify(embedded)}, not ${JSON.stringify(type)}`
      : "the key data is for another key type";
  return null;
}

const KEY_LINE_SHAPE = '("<type> <base64> [comment]")';

/** Checks one OpenSSH public key line; returns it trimmed. */
function validateSshKey(field: string, value: unknown): string {
  const line = expectString(field, value).trim();
  // Its secret is never repeated in a message, nor in a job log.
  if (PRIVATE_KEY.test(line))
    throw new InputError(field, "(not shown)", "is a private key; give its public key (the .pub file's line)");
  const problem = keyLineProblem(line, true);
  if (problem !== null) throw new InputError(field, value, `is not an OpenSSH public key line ${KEY_LINE_SHAPE}: ${problem}`);
  const [type = "", blob = "", ...comment] = line.split(/[ \t]+/);
  return [type, blob, ...comment].join(" ");
}

/**
 * The key lines of a public key file's text (blank lines and comments
 * skipped), each checked: a file that is anything else (a private key, a
 * password file given by mistake) is refused by its path and line number,
 * never quoted.
 */
export function keyLinesOfFile(field: string, path: string, text: string): string[] {
  if (PRIVATE_KEY.test(text)) throw new InputError(field, path, "is a private key; give the .pub file");
  const lines = text.split("\n");
  return lines.flatMap((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return [];
    const problem = keyLineProblem(line, false);
    if (problem !== null) {
      throw new InputError(field, path, `line ${i + 1} is not an OpenSSH public key line ${KEY_LINE_SHAPE}: ${problem}`);
    }
    return [line];
  });
}

export function sshKeys(value: unknown, managed: ManagedKey | null): string[] {
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
