// Proof that each source override reaches the VM: the source's store path is
// among the requisites of the toplevel's derivation (instantiated, not
// built; one Nix call, whose evaluation Nix caches for the build). An override of a package nixpkgs lacks, or of one nothing in this
// VM uses, would otherwise build a VM that silently runs the stock package.
import { InputError, NixError } from "../core/errors.ts";
import { formatBytes } from "../core/format.ts";
import { didYouMean } from "../core/suggest.ts";
import { derivationOutputs } from "../nix/derivation.ts";
import { dirOfGitFileUrl } from "../nix/flake_ref.ts";
import type { PathInfo } from "../nix/json.ts";
import type { Nix } from "../nix/locate.ts";
import { attributeNames, derivationClosure, derivationOf } from "../nix/operations.ts";
import { sourcePathOf } from "../nix/store_path.ts";

export interface OverrideReport {
  pkg: string;
  /** The store path of the override's source, as locked. */
  source: string;
  /** How the source was taken: a directory whole (`path`), or as git takes it (`git`: a URL, or a work tree's tracked files). */
  kind: "path" | "git";
  /** Where it came from: the directory, or the git URL. */
  from: string;
  /** The bytes of source that entered the store (its NAR size), or null when Nix did not say. */
  source_bytes: number | null;
  /** Whether the caller allowed it to reach nothing. */
  optional: boolean;
  /** The derivations' outputs built from the source: the closure paths it reaches (empty: it reaches nothing). */
  built: string[];
}

/** A source's entry in flake.lock: how it was given, and what Nix locked. */
interface LockNode {
  locked?: { narHash?: unknown; type?: unknown };
  original?: { path?: unknown; url?: unknown };
}

/** Where the template's flake keeps the system: its package set is `<flake>#nixosConfigurations.vm.pkgs`. */
const PACKAGES = "nixosConfigurations.vm.pkgs";

/** The `<pkg>` of each `<pkg>-src` input. */
function overriddenPackages(sourceInputs: readonly string[]): string[] {
  return sourceInputs.map((input) => input.replace(/-src$/, ""));
}

/** Says why an override reaches nothing: a package nixpkgs does not have (with the closest names), or one this VM does not use. */
async function whyUnreached(nix: Nix, flakeRef: string, pkg: string): Promise<InputError> {
  try {
    await derivationOf(nix, `${flakeRef}#${PACKAGES}.${pkg}`);
  } catch (error) {
    if (!(error instanceof NixError) || !error.nixMessage.includes(`attribute '${pkg}' missing`)) throw error;
    const names = (await attributeNames(nix, `${flakeRef}#${PACKAGES}`)).filter((name) => name !== pkg);
    return new InputError("closure.overrides", pkg, `is not a package of this nixpkgs${didYouMean(pkg, names)}`);
  }
  return new InputError(
    "closure.overrides",
    pkg,
    "is a package nothing in this VM uses, so the override would change nothing: choose the profiles or test suites " +
      'that use it, or mark the override "optional": true',
  );
}

/** The override reports, and the toplevel's derivation the check instantiated (the build realises it without evaluating again). */
export interface OverrideCheck {
  reports: OverrideReport[];
  toplevelDrv: string | null;
}

/** The derivation of a closure's root: the one .drv no other path of the closure refers to. */
function rootDerivation(requisites: readonly PathInfo[]): string | null {
  const referred = new Set(requisites.flatMap((info) => info.references.filter((ref) => ref !== info.path)));
  const roots = requisites.filter((info) => info.path.endsWith(".drv") && !referred.has(info.path));
  return roots.length === 1 ? (roots[0] as PathInfo).path : null;
}

/**
 * Checks every source override of a locked config dir against the
 * toplevel's derivation (which Nix instantiates here: the evaluation of
 * the system); refuses, before anything is built, an override that
 * reaches nothing unless it is optional.
 */
export async function verifyOverrides(
  nix: Nix,
  flakeRef: string,
  lock: unknown,
  sourceInputs: readonly string[],
  optional: readonly string[],
): Promise<OverrideCheck> {
  if (sourceInputs.length === 0) return { reports: [], toplevelDrv: null };
  const requisites = await derivationClosure(nix, `${flakeRef}#toplevel`);
  const paths = new Set(requisites.map((info) => info.path));
  const nodes = (lock as { nodes?: Record<string, LockNode> } | null)?.nodes ?? {};
  const reports: OverrideReport[] = [];
  for (const pkg of overriddenPackages(sourceInputs)) {
    const node = nodes[`${pkg}-src`];
    const narHash = node?.locked?.narHash;
    const source = typeof narHash === "string" ? sourcePathOf(narHash) : null;
    if (source === null) throw new InputError("closure.overrides", pkg, "has no locked source: lock the config dir first");
    const kind = node?.locked?.type === "path" ? "path" : "git";
    const given = kind === "path" ? node?.original?.path : node?.original?.url;
    const from = typeof given === "string" ? (dirOfGitFileUrl(given) ?? given) : "";
    const sourceBytes = requisites.find((info) => info.path === source)?.narSize;
    const report: OverrideReport = {
      pkg,
      source,
      kind,
      from,
      source_bytes: typeof sourceBytes === "number" ? sourceBytes : null,
      optional: optional.includes(pkg),
      built: [],
    };
    if (paths.has(source)) {
      const users = requisites.filter((info) => info.path.endsWith(".drv") && info.references.includes(source));
      report.built = users.flatMap((info) => derivationOutputs(info.path)).sort();
    } else if (!report.optional) {
      throw await whyUnreached(nix, flakeRef, pkg);
    }
    reports.push(report);
  }
  return { reports, toplevelDrv: rootDerivation(requisites) };
}

/** `git, 12.0 KiB of source from /home/me/src/xfsprogs` */
function taken(r: OverrideReport): string {
  const size = r.source_bytes === null ? "" : `, ${formatBytes(r.source_bytes)} of source`;
  return `${r.kind}${size} from ${r.from}`;
}

/** One line per override for the log. */
export function formatOverrides(reports: readonly OverrideReport[]): string {
  return reports
    .map((r) =>
      r.built.length > 0
        ? `override ${r.pkg} (${taken(r)}): ${r.source} builds ${r.built.join(", ")}`
        : `override ${r.pkg} (${taken(r)}): ${r.source} reaches nothing in this VM (optional)`,
    )
    .join("\n");
}
