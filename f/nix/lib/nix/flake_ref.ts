// Directories as flake references.
import { SetupError } from "../core/errors.ts";

/** Characters every Nix version reads unchanged in a `path:` flake URL. */
const URL_SAFE_PATH = /^\/[A-Za-z0-9/._~+@,=-]*$/;

/**
 * The `path:` flake URL of an absolute directory. Nix 2.8 neither accepts
 * spaces nor decodes %-escapes in such URLs (2.19+ does), so a directory
 * with other characters is refused with a message rather than misread.
 */
export function pathFlakeRef(dir: string, what = "directory"): string {
  if (!URL_SAFE_PATH.test(dir)) {
    const bad = [...dir].find((ch) => !/[A-Za-z0-9/._~+@,=-]/.test(ch)) ?? dir[0];
    throw new SetupError(
      `${what} ${JSON.stringify(dir)} contains ${JSON.stringify(bad)}: a path: flake URL cannot carry it on every Nix ` +
        "version; use a path of letters, digits and / . _ ~ + @ , = -",
    );
  }
  return `path:${dir}`;
}

/** The installable of a config dir's system, which every build and plan of it names: its flake's `toplevel` output. */
export function toplevelInstallable(configDir: string): string {
  return `${pathFlakeRef(configDir)}#toplevel`;
}

/**
 * The `file://` URL of a local git repository for a git input's `url`, every
 * character but the URL-safe ones %-escaped: every Nix version decodes them
 * there (and none takes a space as it is).
 */
export function gitFileUrl(dir: string): string {
  const encoded = [...Buffer.from(dir, "utf8")]
    .map((byte) => {
      const char = String.fromCharCode(byte);
      return /[A-Za-z0-9/._~+@,=-]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    })
    .join("");
  return `file://${encoded}`;
}

/** The directory of a URL `gitFileUrl` made, or null for any other URL. */
export function dirOfGitFileUrl(url: string): string | null {
  const path = /^file:\/\/(\/[A-Za-z0-9/._~+@,=%-]*)$/.exec(url)?.[1];
  if (path === undefined) return null;
  try {
    return decodeURIComponent(path);
  } catch {
    return null;
  }
}
