// Pure rendering: flake.nix from the library's imageless template, and
// default.nix from a validated GuestConfig. No I/O here.
import { SetupError } from "../core/errors.ts";
import { dirOfGitFileUrl, gitFileUrl, pathFlakeRef } from "../nix/flake_ref.ts";
import { GATED_PROFILE_OPTIONS, type GuestConfig, type SourceOverride, type WorkTreeSnapshot } from "./model.ts";
import { nixAttrName, nixString, nixStringList } from "./nix_string.ts";

const TEMPLATE_PLACEHOLDER = "path:/path/to/nixos-flake";
const TEMPLATE_INPUT_ANCHOR = '    nixpkgs.follows = "nixos-flake/nixpkgs";';

/** Uncommented `<name>-src = {` inputs: the source overrides lock_config re-locks. */
const SOURCE_INPUT = /^[ \t]*([A-Za-z_][A-Za-z0-9_'-]*-src)[ \t]*=[ \t]*\{/gm;

/** The comment that marks a git work tree's input, whose rev lock_config moves to the tree's state each time. */
const WORK_TREE_NOTE = "# a git work tree: its tracked files as lock_config last found them";
/** A work tree's input line, as `overrideInput` renders it. */
const WORK_TREE_INPUT =
  /^ {4}([A-Za-z_][A-Za-z0-9_'-]*-src) = \{ type = "git"; url = "(file:\/\/[^"\\$]*)"; rev = "([0-9a-f]{40})";( submodules = true;)? flake = false; \}; # a git work tree: .*$/gm;

function overrideInput(o: SourceOverride, snapshots: ReadonlyMap<string, WorkTreeSnapshot>): string {
  if (o.workTree) {
    const snapshot = snapshots.get(`${o.pkg}-src`);
    if (snapshot === undefined) throw new Error(`renderFlake: the work tree of ${o.pkg} has no snapshot`);
    return workTreeInput(`${o.pkg}-src`, gitFileUrl(o.src), snapshot.rev, snapshot.submodules);
  }
  const fields =
    o.kind === "path"
      ? [`type = "path";`, `path = ${nixString(o.src)};`]
      : [
          `type = "git";`,
          `url = ${nixString(o.src)};`,
          ...(o.ref === null ? [] : [`ref = ${nixString(o.ref)};`]),
          "submodules = true;",
        ];
  return `    ${o.pkg}-src = { ${[...fields, "flake = false;"].join(" ")} };`;
}

function workTreeInput(input: string, url: string, rev: string, submodules: boolean): string {
  const fields = [`type = "git";`, `url = ${nixString(url)};`, `rev = ${nixString(rev)};`];
  if (submodules) fields.push("submodules = true;");
  return `    ${input} = { ${[...fields, "flake = false;"].join(" ")} }; ${WORK_TREE_NOTE}`;
}

/** A git work tree's input of a rendered flake.nix: its name, its directory and the rev it is locked to now. */
export interface WorkTreeInput {
  input: string;
  dir: string;
  rev: string;
}

/** The git work trees' inputs a flake.nix of ours declares, in order. */
export function workTreeInputsOf(flakeNix: string): WorkTreeInput[] {
  return [...flakeNix.matchAll(WORK_TREE_INPUT)].flatMap((m) => {
    const dir = dirOfGitFileUrl(m[2] as string);
    return dir === null ? [] : [{ input: m[1] as string, dir, rev: m[3] as string }];
  });
}

/** A directory's input, as `overrideInput` renders it. */
const PATH_INPUT = /^ {4}([A-Za-z_][A-Za-z0-9_'-]*-src) = \{ type = "path"; path = "((?:[^"\\]|\\.)*)"; flake = false; \};$/gm;
const NIX_ESCAPES: Readonly<Record<string, string>> = { n: "\n", r: "\r", t: "\t" };

/** The directories a flake.nix of ours copies whole (`path` inputs): input name and directory. */
export function pathInputsOf(flakeNix: string): { input: string; dir: string }[] {
  return [...flakeNix.matchAll(PATH_INPUT)].map((m) => ({
    input: m[1] as string,
    dir: (m[2] as string).replace(/\\(.)/gs, (_, ch: string) => NIX_ESCAPES[ch] ?? ch),
  }));
}

/** flake.nix with every work tree's input at no snapshot: what stays when only the trees moved on. */
export function withoutWorkTreeSnapshots(flakeNix: string): string {
  return flakeNix.replace(WORK_TREE_INPUT, (line) => line.replace(/ rev = "[0-9a-f]{40}";/, ' rev = "";'));
}

/** flake.nix with each work tree's input at the snapshot given for it (by input name). */
export function withWorkTreeSnapshots(flakeNix: string, snapshots: ReadonlyMap<string, WorkTreeSnapshot>): string {
  return flakeNix.replace(WORK_TREE_INPUT, (line, input: string, url: string) => {
    const snapshot = snapshots.get(input);
    return snapshot === undefined ? line : workTreeInput(input, url, snapshot.rev, snapshot.submodules);
  });
}

/** flake.nix: the template with the library path and the override inputs filled in (a work tree's at its snapshot, by input name). */
export function renderFlake(
  template: string,
  templatePath: string,
  libraryDir: string,
  overrides: readonly SourceOverride[],
  snapshots: ReadonlyMap<string, WorkTreeSnapshot> = new Map(),
): string {
  const placeholders = template.split(TEMPLATE_PLACEHOLDER).length - 1;
  if (placeholders !== 1) {
    throw new SetupError(
      `${templatePath}: expected exactly one ${JSON.stringify(TEMPLATE_PLACEHOLDER)} in the template, found ${placeholders}; ` +
        "the library's template changed, so the renderer must be updated",
    );
  }
  const lines = template.replace(TEMPLATE_PLACEHOLDER, pathFlakeRef(libraryDir, "the nixos-flake library")).split("\n");
  const anchor = lines.indexOf(TEMPLATE_INPUT_ANCHOR);
  if (anchor < 0) {
    throw new SetupError(
      `${templatePath}: the line ${JSON.stringify(TEMPLATE_INPUT_ANCHOR)} is missing; ` +
        "source-override inputs are inserted after it, so the renderer must be updated",
    );
  }
  lines.splice(anchor + 1, 0, ...overrides.map((o) => overrideInput(o, snapshots)));
  return lines.join("\n");
}

/** The `<pkg>-src` inputs a flake.nix declares, in order (commented lines skipped). */
export function sourceInputsOf(flakeNix: string): string[] {
  return [...flakeNix.matchAll(SOURCE_INPUT)].map((m) => m[1] as string);
}

/** The line default.nix has when the host name is left to the kernel command line (hostname_at_boot). */
const HOSTNAME_AT_BOOT_LINE = '  networking.hostName = "";';

/**
 * What the caller appends to the guest's kernel command line for a config
 * dir's system: `systemd.hostname=<vm_name>` when its default.nix leaves the
 * host name to boot, else nothing.
 */
export function kernelParamsOf(defaultNix: string, vmName: string): string[] {
  return defaultNix.split("\n").includes(HOSTNAME_AT_BOOT_LINE) ? [`systemd.hostname=${vmName}`] : [];
}

function block(lines: string[]): string[] {
  return lines.length === 0 ? [] : ["", ...lines];
}

function overlay(overrides: readonly SourceOverride[]): string[] {
  if (overrides.length === 0) return [];
  const body = overrides.flatMap((o) => [
    `      ${o.pkg} = prev.${o.pkg}.overrideAttrs (_: {`,
    `        src = inputs.${o.pkg}-src;`,
    ...Object.entries(o.attrs).map(([name, value]) => `        ${nixAttrName(name)} = ${nixString(value)};`),
    "      });",
  ]);
  return ["  nixpkgs.overlays = lib.mkAfter [", "    (final: prev: {", ...body, "    })", "  ];"];
}

/** default.nix: a NixOS module that adds the guest's settings to the template's modules. */
export function renderDefault(guest: GuestConfig): string {
  const imports = [
    ...guest.profiles.map((p) => `nixos-flake.nixosModules.profiles.${nixAttrName(p)}`),
    ...guest.testSuites.map((t) => `nixos-flake.nixosModules.testSuites.${nixAttrName(t)}`),
    ...(guest.shares.size > 0 ? ["nixos-flake.nixosModules.mounts.shares"] : []),
  ];
  const user = `users.users.${nixString(guest.userName)}`;
  const keyList = (owner: string) => [
    `  ${owner}.openssh.authorizedKeys.keys = [`,
    ...guest.sshKeys.map((k) => `    ${nixString(k)}`),
    "  ];",
  ];
  const lines = [
    "# Rendered by nixos-closure (render_config) from the flow's inputs; re-render instead of editing.",
    "{ config, lib, pkgs, nixos-flake, inputs, ... }:",
    "{",
    ...(imports.length === 0 ? ["  imports = [ ];"] : ["  imports = [", ...imports.map((i) => `    ${i}`), "  ];"]),
    "",
    // Empty: NixOS names the system "unnamed" and writes no /etc/hostname; systemd takes the name from the kernel command line.
    `  networking.hostName = ${nixString(guest.hostnameAtBoot ? "" : guest.vmName)};`,
    `  nixos-flake.user.name = ${nixString(guest.userName)};`,
    ...(guest.rootHome === null ? [] : [`  users.users.root.home = lib.mkForce ${nixString(guest.rootHome)};`]),
    ...block(guest.profiles.flatMap((p) => (GATED_PROFILE_OPTIONS[p] ? [`  ${GATED_PROFILE_OPTIONS[p]} = true;`] : []))),
    ...block(guest.sshKeys.length === 0 ? [] : [...keyList("users.users.root"), ...keyList(user)]),
    ...block(
      [...guest.shares].map(([point, share]) => {
        const options = share.options.length === 0 ? "" : ` options = ${nixStringList(share.options)};`;
        return `  nixos-flake.shares.${nixString(point)} = { tag = ${nixString(share.tag)};${options} };`;
      }),
    ),
    ...block(overlay(guest.overrides)),
    "}",
    "",
  ];
  return lines.join("\n");
}
