// Pure rendering: flake.nix from the library's imageless template, and
// default.nix from a validated GuestConfig. No I/O here.
import { SetupError } from "../core/errors.ts";
import { pathFlakeRef } from "../nix/flake_ref.ts";
import { GATED_PROFILE_OPTIONS, type GuestConfig, type SourceOverride } from "./model.ts";
import { nixAttrName, nixString, nixStringList } from "./nix_string.ts";

const TEMPLATE_PLACEHOLDER = "path:/path/to/nixos-flake";
const TEMPLATE_INPUT_ANCHOR = '    nixpkgs.follows = "nixos-flake/nixpkgs";';

/** Uncommented `<name>-src = {` inputs: the source overrides lock_config re-locks. */
const SOURCE_INPUT = /^[ \t]*([A-Za-z_][A-Za-z0-9_'-]*-src)[ \t]*=[ \t]*\{/gm;

function overrideInput(o: SourceOverride): string {
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

/** flake.nix: the template with the library path and the override inputs filled in. */
export function renderFlake(
  template: string,
  templatePath: string,
  libraryDir: string,
  overrides: readonly SourceOverride[],
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
  lines.splice(anchor + 1, 0, ...overrides.map(overrideInput));
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
