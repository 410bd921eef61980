// The example library and stand-in nixpkgs shipped in examples/ (for the
// test suite and `nixos-closure demo`), installed into a directory: the
// library's nixpkgs input pointed at the installed stand-in.
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./flow.ts";

export const EXAMPLES_DIR = join(ROOT, "examples");

export interface InstalledExamples {
  libraryDir: string;
  nixpkgsDir: string;
}

/** Copies the examples into `dir`/nixos-flake and `dir`/nixpkgs; the library still needs `nix flake lock`. */
export function installExamples(dir: string): InstalledExamples {
  const libraryDir = join(dir, "nixos-flake");
  const nixpkgsDir = join(dir, "nixpkgs");
  cpSync(join(EXAMPLES_DIR, "nixpkgs"), nixpkgsDir, { recursive: true });
  cpSync(join(EXAMPLES_DIR, "nixos-flake"), libraryDir, { recursive: true });
  const flake = join(libraryDir, "flake.nix");
  writeFileSync(flake, readFileSync(flake, "utf8").replace(`"path:@NIXPKGS@"`, `"path:${nixpkgsDir}"`));
  return { libraryDir, nixpkgsDir };
}
