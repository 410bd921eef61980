// Finds the `nix` to run ($NIX_BIN first, then PATH) and asks it its version.
import { accessSync, constants } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { SetupError } from "../core/errors.ts";
import { type Runner, run } from "../core/process.ts";
import { type NixVersion, parseNixVersion } from "./version.ts";

/** Where Nix's installer puts the default profile's binaries. */
const DEFAULT_NIX_BIN = "/nix/var/nix/profiles/default/bin";

/** A located Nix: every Nix call of a step goes through one. */
export interface Nix {
  /** Absolute path of the nix binary. */
  program: string;
  /** What `nix --version` says, asked on first use (a Nix process costs tens of milliseconds; most steps need no version). */
  version(): Promise<NixVersion>;
  /** Global arguments (`--option name value` settings) put on every call. */
  settings: readonly string[];
  /** Runs its commands: the step's runner with the Nix's directory first on PATH. */
  runner: Runner;
  /** What it said about itself before, in this run. */
  facts: NixFacts;
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * What Nix said about itself, shared by the steps of one run: a caller
 * running many steps and VMs (the CLI) asks each Nix once. Versions by
 * program; resolved settings by program, arguments and NIX_* environment.
 */
export interface NixFacts {
  versions: Map<string, Promise<NixVersion>>;
  settings: Map<string, Promise<Record<string, unknown>>>;
}

export function newNixFacts(): NixFacts {
  return { versions: new Map(), settings: new Map() };
}

/**
 * Finds nix and detects its version: in $NIX_BIN when it is set (and only
 * there: a NIX_BIN without nix is an error, not a reason to take another
 * Nix), else in Nix's default profile, then on PATH.
 */
export function locateNix(runner: Runner, settings: readonly string[] = [], facts: NixFacts = newNixFacts()): Nix {
  const given = runner.env.NIX_BIN ?? "";
  if (given !== "" && !isAbsolute(given)) throw new SetupError(`NIX_BIN=${JSON.stringify(given)} must be an absolute path`);
  const path = (runner.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  const searched = given !== "" ? [given] : [DEFAULT_NIX_BIN, ...path];
  const program = searched.map((dir) => join(dir, "nix")).find(isExecutable);
  if (program === undefined && given !== "") {
    throw new SetupError(
      `NIX_BIN=${given} holds no nix: point NIX_BIN at the directory that holds \`nix\`, or unset it to use Nix's default profile or PATH`,
    );
  }
  if (program === undefined) {
    throw new SetupError(
      `nix was not found: looked in ${DEFAULT_NIX_BIN} and on PATH (${runner.env.PATH ?? ""}). ` +
        "Install Nix (https://nixos.org/download, or `apt-get install nix-bin` on Debian), " +
        "or set NIX_BIN to the directory that holds `nix`.",
    );
  }
  const dir = program.slice(0, -"/nix".length);
  const nixRunner: Runner = {
    ...runner,
    env: { ...runner.env, PATH: [dir, runner.env.PATH ?? ""].filter((p) => p !== "").join(delimiter) },
  };
  const version = () => {
    const known = facts.versions.get(program);
    if (known) return known;
    const asked = run(nixRunner, [program, "--version"], { onStderrLine: () => {} }).then((result) => {
      const parsed = result.exitCode === 0 ? parseNixVersion(result.stdout) : null;
      if (parsed === null) {
        throw new SetupError(
          `${program} --version failed (exit ${result.exitCode}): ${[result.stdout, ...result.stderrTail].join("\n").trim()}`,
        );
      }
      return parsed;
    });
    facts.versions.set(program, asked);
    return asked;
  };
  return { program, version, settings: [...settings], runner: nixRunner, facts };
}
