// Source overrides: a package built from the operator's directory or git
// branch instead of the nixpkgs release.
import { existsSync, lstatSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { InputError } from "../core/errors.ts";
import { forbiddenPart, publishedPrivately, redirectable, surveyTree } from "../core/files.ts";
import { formatBytes, plural } from "../core/format.ts";
import { didYouMean } from "../core/suggest.ts";
import { hasOptionLikeHost } from "../nix/settings.ts";
import { checkKeys, expectBoolean, expectString, isBlank, isEmptyRow, isPlainObject } from "./fields.ts";
import { CURATED_OVERRIDE_PACKAGES, OVERRIDE_FIELDS, OVERRIDE_KINDS, type OverrideInput, type SourceOverride } from "./model.ts";
import { isNixIdentifier } from "./nix_string.ts";

const PACKAGE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const GIT_URL = /^(?:[a-z][a-z0-9+.-]*:\/\/\S+|[^\s/@]+@[^\s/:]+:\S+)$/;
const GIT_REF = /^[^\s\0~^:?*[\\]+$/;

function overrideKind(field: string, value: unknown): SourceOverride["kind"] | null {
  if (isBlank(value)) return null;
  const kind = expectString(field, value).trim();
  if (!(OVERRIDE_KINDS as readonly string[]).includes(kind)) {
    throw new InputError(
      field,
      kind,
      `is not one of: ${OVERRIDE_KINDS.join(", ")} (git: a work tree's tracked files; path: the directory whole)${didYouMean(kind, OVERRIDE_KINDS)}`,
    );
  }
  return kind as SourceOverride["kind"];
}

/**
 * Whether a directory is a git work tree (it has a `.git`), and why git
 * would not take it (said after the directory): not one, or one of another
 * user. Git reads only its own user's repositories (their config can name
 * programs git runs), and so does Nix's git fetcher.
 */
function gitWorkTree(dir: string, uid: number): { isWorkTree: boolean; refused: string | null } {
  const dotGit = lstatSync(join(dir, ".git"), { throwIfNoEntry: false });
  if (dotGit === undefined || !(dotGit.isDirectory() || dotGit.isFile())) {
    return { isWorkTree: false, refused: "is not a git work tree (it has no .git)" };
  }
  const owner = [statSync(dir).uid, dotGit.uid].find((owner) => owner !== uid);
  if (owner === undefined) return { isWorkTree: true, refused: null };
  return {
    isWorkTree: true,
    refused: `is a git work tree of uid ${owner}, and git (Nix's git fetcher too) reads only the repositories of the user running it (uid ${uid})`,
  };
}

function override(field: string, value: unknown, curated: boolean, uid: number, warnings: string[]): SourceOverride {
  if (!isPlainObject(value)) throw new InputError(field, value, 'must be an object like {"pkg": "fio", "src": "/src/fio"}');
  checkKeys(field, value, OVERRIDE_FIELDS, "an override");
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
  let src = expectString(`${field}.src`, value.src).trim();
  const ref = isBlank(value.ref) ? null : expectString(`${field}.ref`, value.ref).trim();
  const kindGiven = overrideKind(`${field}.kind`, value.kind);
  let kind: SourceOverride["kind"];
  let workTree = false;
  if (isAbsolute(src)) {
    if (ref !== null)
      throw new InputError(
        `${field}.ref`,
        ref,
        `cannot be used with a directory src (${src}); a ref selects a git branch or tag: give src file://${src} with it ` +
          "to build a committed branch",
      );
    let real: string | null = null;
    try {
      if (statSync(src).isDirectory()) real = realpathSync(src);
    } catch {}
    if (real === null) throw new InputError(`${field}.src`, src, "is not an existing directory on this worker");
    // Checked where a link leads (its target, the target's directories and tree), and rendered as that real path,
    // so that Nix copies what was checked, even if the link is changed later.
    const given = src;
    src = real;
    const git = gitWorkTree(src, uid);
    if (kindGiven === "git" && git.refused !== null)
      throw new InputError(`${field}.src`, given, `${git.refused}; give kind "path" to copy the directory whole`);
    workTree = kindGiven === "git" || (kindGiven === null && git.refused === null);
    kind = workTree ? "git" : "path";
    // A work tree's tracked files are surveyed when its snapshot is taken; the directories above it, now.
    const survey = surveyTree(src, workTree ? { uid, files: [] } : { uid });
    const hidden = forbiddenPart(survey, uid);
    if (hidden !== null) {
      throw new InputError(
        `${field}.src`,
        given,
        `holds ${hidden.path}, which only its owner may read; Nix copies a source into the store, where everyone can read it: ` +
          "make the tree readable (chmod -R o+rX) or choose another directory",
      );
    }
    // Nix copies the source by its name, after this check: nobody else may be able to make that name lead elsewhere.
    const redirect = redirectable(dirname(given), uid);
    if (redirect !== null) {
      throw new InputError(
        `${field}.src`,
        given,
        `is in no safe place: ${redirect}, who could swap it for a link into a private tree between this check and ` +
          "Nix's copy: give a tree under directories only you and root may write",
      );
    }
    // A work tree's own warning comes with its snapshot, which surveys these directories again.
    const published = workTree ? null : publishedPrivately(`override ${pkg}`, src, survey);
    if (published !== null) warnings.push(published);
    if (!workTree && git.isWorkTree) {
      const why = kindGiven === "path" ? 'kind "path"' : `it ${git.refused}`;
      warnings.push(
        `override ${pkg}: ${src} is a git work tree, copied whole as a plain directory (${why}): Nix copies ` +
          `${formatBytes(survey.bytes)} in ${plural(survey.files, "file")}, untracked and ignored files and .git included`,
      );
    }
  } else if (GIT_URL.test(src)) {
    kind = "git";
    // A flake-style URL (git+file://, git+https://) names the repository its plain URL does, which is what a
    // git input takes (given as is, Nix treats a git+file:// repository as remote and fails to lock it).
    src = src.replace(/^git\+(?=[a-z][a-z0-9+.-]*:\/\/)/, "");
    if (kindGiven === "path")
      throw new InputError(`${field}.kind`, kindGiven, `cannot be used with a git URL src (${src}); "path" takes a directory`);
    if (hasOptionLikeHost(src))
      throw new InputError(`${field}.src`, src, "names a host starting with '-', which git and ssh would take as an option");
    const local = /^file:\/\/(\/.*)$/.exec(src)?.[1];
    if (local !== undefined && existsSync(decodeURI(local))) {
      // git reads a local repository only as its owner: another user's is refused now, not when lock runs git.
      const owner = statSync(decodeURI(local)).uid;
      if (owner !== uid && uid >= 0) {
        throw new InputError(
          `${field}.src`,
          src,
          `is a repository of uid ${owner}, and git (Nix's git fetcher too) reads only the repositories of the user running it (uid ${uid}); give its directory to copy it whole`,
        );
      }
      const survey = surveyTree(decodeURI(local), { uid });
      const hidden = forbiddenPart(survey, uid);
      if (hidden !== null) {
        throw new InputError(
          `${field}.src`,
          src,
          `names ${hidden.path}, which only its owner may read; Nix would copy it into the store, where everyone can read it`,
        );
      }
      const published = publishedPrivately(`override ${pkg}`, src, survey);
      if (published !== null) warnings.push(published);
    }
    // A ref git would take as an option (--upload-pack=...) is no ref.
    if (ref !== null && (!GIT_REF.test(ref) || ref.startsWith("-")))
      throw new InputError(`${field}.ref`, ref, "is not a valid git ref name");
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
  const optional = expectBoolean(`${field}.optional`, value.optional, false);
  return { field, pkg, src, kind, workTree, ref, attrs: { ...(attrs as Record<string, string>) }, optional };
}

/** The validated overrides; `uid` runs the step, and what is worth saying once goes to `warnings`. */
export function overrides(curatedValue: unknown, extraValue: unknown, uid: number, warnings: string[]): SourceOverride[] {
  const rows = (field: string, value: unknown, curated: boolean): SourceOverride[] => {
    if (value === null || value === undefined) return [];
    if (!Array.isArray(value)) throw new InputError(field, value, "must be a list of {pkg, src, kind?, ref?, attrs?}");
    return value.flatMap((row: OverrideInput, i) =>
      isEmptyRow(row) ? [] : [override(`${field}[${i}]`, row, curated, uid, warnings)],
    );
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
