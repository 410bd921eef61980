// Where the nixos-flake library comes from: a directory (vendored, or
// given), or any flake reference (github:..., git+file://..., path:...),
// which Nix fetches to a store path whose template is rendered; with none
// given and nothing vendored, the upstream library.
import { existsSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { InputError, NixError, SetupError } from "../core/errors.ts";
import { forbiddenPart, publishedPrivately, surveyTree } from "../core/files.ts";
import { runningUid } from "../core/process.ts";
import { flakeSource } from "../nix/operations.ts";
import { workerLayout } from "../worker/layout.ts";
import type { Context } from "./context.ts";

/** The library when nothing names one and nothing is vendored. */
export const UPSTREAM_LIBRARY = "github:linux-kdevops/nixos-flake";

/** A flake reference Nix can fetch: a scheme, no spaces or control characters, nothing that reads as a flag. */
const FLAKE_REF = /^[a-z][a-z0-9+.-]*:[^\s\0-\x1f\x7f]+$/;

/** The schemes a library may be fetched with: forges, git, tarballs over the network, and local directories (checked). */
const LIBRARY_SCHEMES: readonly string[] = [
  "github",
  "gitlab",
  "sourcehut",
  "git+https",
  "git+ssh",
  "git+http",
  "git+file",
  "https",
  "path",
];

/**
 * Refuses a reference Nix would fetch from a file or a directory others may
 * not read (the store would expose it); a warning when those are all the own
 * files of the user running the step.
 */
function checkReference(ref: string): string | null {
  const scheme = ref.slice(0, ref.indexOf(":"));
  if (!LIBRARY_SCHEMES.includes(scheme)) {
    throw new InputError(
      "closure.nixos_flake",
      ref,
      `uses the scheme ${JSON.stringify(scheme)}; a library comes from ${LIBRARY_SCHEMES.map((s) => `${s}:`).join(", ")}`,
    );
  }
  const local = /^(?:path:|git\+file:\/\/)(\/[^?#]*)/.exec(ref)?.[1];
  return local === undefined ? null : checkReadable(decodeURI(local), ref);
}

function checkReadable(dir: string, given: string): string | null {
  if (!existsSync(dir)) return null; // Nix says what is missing
  const uid = runningUid();
  const survey = surveyTree(dir, { uid });
  const hidden = forbiddenPart(survey, uid);
  if (hidden !== null) {
    throw new InputError(
      "closure.nixos_flake",
      given,
      `names ${hidden.path}, which only its owner may read; Nix would copy it into the store, where everyone can read it`,
    );
  }
  return publishedPrivately("the nixos-flake library", dir, survey);
}

const TEMPLATE = join("templates", "imageless", "flake.nix");

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Checks what can be checked of a given library without Nix (before
 * anything is written): its form, and a directory's template. Returns the
 * warning a library of the user's own private files gets.
 */
export function checkGivenLibrary(given: unknown): string | null {
  if (given !== undefined && given !== null && typeof given !== "string") {
    throw new InputError("closure.nixos_flake", given, "must be a directory or a flake reference");
  }
  const text = (given ?? "").trim();
  if (text === "") return null;
  if (FLAKE_REF.test(text)) return checkReference(text);
  if (!isAbsolute(text)) {
    throw new InputError(
      "closure.nixos_flake",
      text,
      "is neither an absolute directory nor a flake reference (github:owner/repo, git+file:///dir, path:/dir)",
    );
  }
  if (!existsSync(join(text, TEMPLATE))) {
    throw new InputError("closure.nixos_flake", text, `is not the nixos-flake library: ${text} has no ${TEMPLATE}`);
  }
  return checkReadable(text, text);
}

/** The library's directory: `given` (a directory or a flake reference), else the worker's, else upstream's. */
export async function libraryDir(context: Context, given: unknown): Promise<string> {
  if (given !== undefined && given !== null && typeof given !== "string") {
    throw new InputError("closure.nixos_flake", given, "must be a directory or a flake reference");
  }
  const text = (given ?? "").trim();
  let dir: string;
  if (text === "") {
    // The worker's library: $NIXOS_FLAKE_DIR when set (it must be there), else the vendored one when there is one.
    const worker = workerLayout(context.env).libraryDir;
    dir = context.env.NIXOS_FLAKE_DIR || isDirectory(worker) ? worker : await upstream(context, worker);
    if (!existsSync(join(dir, TEMPLATE))) {
      throw new SetupError(
        `the nixos-flake library at ${dir} has no ${TEMPLATE}; point ${context.words.library} at a checkout of the library`,
      );
    }
    return dir;
  }
  const published = checkGivenLibrary(text);
  if (published !== null) context.log.warn(published);
  if (isAbsolute(text)) {
    dir = text;
  } else if (FLAKE_REF.test(text)) {
    dir = await fetched(context, text);
  } else {
    throw new InputError(
      "closure.nixos_flake",
      text,
      "is neither an absolute directory nor a flake reference (github:owner/repo, git+file:///dir, path:/dir)",
    );
  }
  if (!existsSync(join(dir, TEMPLATE))) {
    throw new InputError("closure.nixos_flake", text, `is not the nixos-flake library: ${dir} has no ${TEMPLATE}`);
  }
  return dir;
}

/** The upstream library, fetched; when that fails (offline, say), the error says where else a library comes from. */
async function upstream(context: Context, vendored: string): Promise<string> {
  try {
    return await fetched(context, UPSTREAM_LIBRARY);
  } catch (error) {
    if (!(error instanceof NixError)) throw error;
    error.message += `\nno library was given and none is at ${vendored}: ${context.words.unfetchedLibrary}`;
    throw error;
  }
}

async function fetched(context: Context, ref: string): Promise<string> {
  context.log.info(`fetching the nixos-flake library ${ref}`);
  return flakeSource(await context.nix(), ref);
}
