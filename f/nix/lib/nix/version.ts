// Which Nix this is: the flavour and version `nix --version` reports, which
// choose command forms where versions differ.

export type NixFlavour = "nix" | "lix" | "determinate";

export interface NixVersion {
  flavour: NixFlavour;
  major: number;
  minor: number;
  patch: number;
  /** What `nix --version` printed. */
  text: string;
}

/** Parses `nix (Nix) 2.26.3`, `nix (Lix, like Nix) 2.93.0`, `nix (Determinate Nix 3.6.2) 2.29.0`; null when it is none of these. */
export function parseNixVersion(text: string): NixVersion | null {
  const match = /\(([^)]*)\)\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) return null;
  const [, name = "", major = "0", minor = "0", patch = "0"] = match;
  const flavour: NixFlavour = /lix/i.test(name) ? "lix" : /determinate/i.test(name) ? "determinate" : "nix";
  return { flavour, major: Number(major), minor: Number(minor), patch: Number(patch), text: text.trim() };
}

export function atLeast(version: NixVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}
