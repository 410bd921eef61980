// Source overrides: a package built from the operator's directory or git
// branch instead of the nixpkgs release.
import { realpathSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { InputError } from "../core/errors.ts";
import { privatePath } from "../core/files.ts";
import { checkKeys, expectBoolean, expectString, isBlank, isEmptyRow, isPlainObject } from "./fields.ts";
import { CURATED_OVERRIDE_PACKAGES, OVERRIDE_FIELDS, type OverrideInput, type SourceOverride } from "./model.ts";
import { isNixIdentifier } from "./nix_string.ts";

const PACKAGE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const GIT_URL = /^(?:[a-z][a-z0-9+.-]*:\/\/\S+|[^\s/@]+@[^\s/:]+:\S+)$/;
const GIT_REF = /^[^\s\0~^:?*[\\]+$/;

function override(field: string, value: unknown, curated: boolean): SourceOverride {
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
  let kind: SourceOverride["kind"];
  if (isAbsolute(src)) {
    kind = "path";
    if (ref !== null)
      throw new InputError(
        `${field}.ref`,
        ref,
        `cannot be used with a directory src (${src}); a ref selects a git branch or tag`,
      );
    let real: string | null = null;
    try {
      if (statSync(src).isDirectory()) real = realpathSync(src);
    } catch {}
    if (real === null) throw new InputError(`${field}.src`, src, "is not an existing directory on this worker");
    // Checked where a link leads (its target, the target's directories and tree), and rendered as that real path,
    // so that Nix copies what was checked, even if the link is changed later.
    const hidden = privatePath(real);
    if (hidden !== null) {
      throw new InputError(
        `${field}.src`,
        src,
        `holds ${hidden}, which only its owner may read; Nix copies a source into the store, where everyone can read it: ` +
          "make the tree readable (chmod -R o+rX) or choose another directory",
      );
    }
    src = real;
  } else if (GIT_URL.test(src)) {
    kind = "git";
    const local = /^file:\/\/(\/.*)$/.exec(src)?.[1];
    const hidden = local === undefined ? null : privatePath(decodeURI(local));
    if (hidden !== null) {
      throw new InputError(
        `${field}.src`,
        src,
        `names ${hidden}, which only its owner may read; Nix would copy it into the store, where everyone can read it`,
      );
    }
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
  const optional = expectBoolean(`${field}.optional`, value.optional, false);
  return { pkg, src, kind, ref, attrs: { ...(attrs as Record<string, string>) }, optional };
}

export function overrides(curatedValue: unknown, extraValue: unknown): SourceOverride[] {
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
