// The command line's flags as data, in groups: each command (cli/commands/)
// lists the groups that apply to it. The parser's options, the help and the
// completion scripts are all made from these definitions.
import { Argument, Option } from "commander";
import { PROFILES, TEST_SUITES } from "../f/nix/lib/config/model.ts";

export interface OutputFlags {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  color?: "auto" | "always" | "never";
}

export interface BuildOutputFlags extends OutputFlags {
  progress?: boolean;
  printBuildLogs?: boolean;
  showTrace?: boolean;
}

/** What a flag's value is, for completion: one of a list, a file, a directory, a VM of this worker, or free text. */
export type ValueKind = { choices: readonly string[] } | "file" | "directory" | "vm" | "text";

export interface OptionSpec {
  /** As the parser spells it: `-v, --verbose`, `--vm-name <name>` (a value in <>). */
  flags: string;
  description: string;
  /** How a shell completes its value: free text unless said (or the parser's choices). */
  value?: ValueKind;
  /** Given more than once, its values are collected in a list. */
  repeatable?: boolean;
  /** The only values the parser takes (the library checks the rest, with its own messages). */
  choices?: readonly string[];
  default?: string;
  /** The flag it cannot go with, by its attribute name (`quiet`). */
  conflicts?: string;
}

export interface ArgumentSpec {
  /** `<vm...>`, `[b]`: required or not, variadic or not, as the parser spells it. */
  name: string;
  description: string;
  value?: ValueKind;
  choices?: readonly string[];
}

/** How a shell completes a flag's value (null: it takes none) or an argument. */
export function valueKind(spec: OptionSpec | ArgumentSpec): ValueKind | null {
  if ("flags" in spec && !/[<[]/.test(spec.flags)) return null;
  return spec.value ?? (spec.choices ? { choices: spec.choices } : "text");
}

/** The parser's option for a definition. */
export function toOption(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.repeatable ? `${spec.description} (repeatable)` : spec.description);
  if (spec.repeatable) option.argParser((value: string, previous: string[] = []) => [...previous, value]);
  if (spec.choices) option.choices(spec.choices);
  if (spec.default !== undefined) option.default(spec.default);
  if (spec.conflicts) option.conflicts(spec.conflicts);
  return option;
}

/** The parser's argument for a definition. */
export function toArgument(spec: ArgumentSpec): Argument {
  const argument = new Argument(spec.name, spec.description);
  return spec.choices ? argument.choices(spec.choices) : argument;
}

export const INPUT: OptionSpec = {
  flags: "--input <file.json>",
  description: "a flow input {guest, closure, lock, root, nix}; the flags override its fields",
  value: "file",
};

export const VM_NAME: OptionSpec = {
  flags: "--vm-name <name>",
  description: "host name of the guest and name of its config dir (default: nixos)",
  value: "vm",
};

/** `build`'s --vm-name: several VMs of one input in one run, each distinct system evaluated once. */
export const VM_NAMES: OptionSpec = {
  ...VM_NAME,
  description: "host name of the guest and name of its config dir (default: nixos); several: one VM each, then a table",
  repeatable: true,
};

export const CONFIG_DIR: OptionSpec = {
  flags: "--config-dir <dir>",
  description: "the config dir (default: the one of --vm-name)",
  value: "directory",
};

/** The guest besides its name: who it is, what it trusts, what it mounts. */
export const GUEST: readonly OptionSpec[] = [
  { flags: "--user <name>", description: "the unprivileged account (default: kdevops)" },
  { flags: "--ssh-key <line>", description: "an OpenSSH public key line to trust", repeatable: true },
  { flags: "--ssh-key-file <file>", description: "a file of public key lines to trust", value: "file", repeatable: true },
  { flags: "--share <mount=tag[:opt,...]>", description: "a virtiofs share, e.g. /mnt/linux=linux:ro", repeatable: true },
  { flags: "--home", description: "share your home into the guest and make it root's home (the default)" },
  { flags: "--no-home", description: "do not share a home" },
  {
    flags: "--home-dir <dir>",
    description: "the home to share (default: $HOME under /home/, else /home/kdevops)",
    value: "directory",
  },
  {
    flags: "--hostname-at-boot",
    description:
      "leave the host name to the kernel command line: append the result's kernel_params; VMs equal but for their name share one system",
  },
];

/** What goes into the closure, and from which library. */
export const CLOSURE: readonly OptionSpec[] = [
  {
    flags: "--profile <name>",
    description: `a profile: ${PROFILES.join(", ")}; 'none' for none`,
    value: { choices: [...PROFILES, "none"] },
    repeatable: true,
  },
  {
    flags: "--test-suite <name>",
    description: "a test suite, e.g. fstests; 'none' for none",
    value: { choices: [...TEST_SUITES, "none"] },
    repeatable: true,
  },
  {
    flags: "--override <pkg=src[#ref]>",
    description: "build a package from a directory or git URL (a git work tree: its tracked files; path:DIR the whole directory)",
    repeatable: true,
  },
  {
    flags: "--optional-override <pkg=src[#ref]>",
    description: "the same, allowed to reach nothing in this VM's closure",
    repeatable: true,
  },
  {
    flags: "--nixos-flake <dir|ref>",
    description:
      "the nixos-flake library: a directory or a flake reference (default: $NIXOS_FLAKE_DIR, $VENDOR_DIR/nixos-flake, else github:linux-kdevops/nixos-flake)",
    value: "directory",
  },
];

export const UPDATE_LOCK: OptionSpec = { flags: "--update-lock", description: "re-pin the nixos-flake library input" };

/** Nix's own settings: `--option NAME VALUE`, as Nix spells it. */
export const NIX_OPTION: readonly OptionSpec[] = [
  {
    flags: "--option <name=value>",
    description: "a Nix setting, as Nix takes it (--option NAME VALUE) or NAME=VALUE; only settings safe to take from a user",
    repeatable: true,
  },
  { flags: "--show-trace", description: "show Nix's whole evaluation trace when evaluation fails" },
];

/** Where and how Nix builds and fetches. */
export const NIX_BUILD: readonly OptionSpec[] = [
  ...NIX_OPTION,
  { flags: "--builders <spec>", description: "remote build machines (Nix's builders setting)" },
  { flags: "--substituter <uri>", description: "an extra binary cache", repeatable: true },
  { flags: "--trusted-public-key <key>", description: "a trusted cache key, name:base64", repeatable: true },
  { flags: "--max-jobs <n>", description: "derivations built at once here (a number or auto)" },
  { flags: "--cores <n>", description: "cores per build (0: all)" },
  {
    flags: "--no-eval-cache",
    description: "evaluate the system even when its inputs are unchanged (the same as --option eval-cache false)",
  },
];

export const DELIVERY: readonly OptionSpec[] = [
  { flags: "--publish-to <uri>", description: "copy the built closure to this store, e.g. ssh-ng://vmhost", repeatable: true },
  { flags: "--substitute-on-destination", description: "let destinations fetch from their own caches" },
];

/** The prepared root: where, and what goes into it besides the system. */
export const ROOT: readonly OptionSpec[] = [
  { flags: "--root-dir <dir>", description: "where the root appears (default: <config_dir>/root)", value: "directory" },
  {
    flags: "--closure <path>",
    description: "a store path whose closure also goes into the root",
    value: "file",
    repeatable: true,
  },
  {
    flags: "--closure-file <file>",
    description: "a nix-store --export file of a closure to import into the root",
    value: "file",
    repeatable: true,
  },
  { flags: "--channel <path>", description: "a store path set as root's channels profile in the root", value: "file" },
  { flags: "--nix-build", description: "build the root with Nix as a store path (to ship) instead of hard-linking it" },
];

/** How much is shown, and how; `verbose` says what -v adds on this command. */
function output(verbose: string): readonly OptionSpec[] {
  return [
    { flags: "--json", description: "print the result as JSON, as the last line of stdout; logs go to stderr" },
    { flags: "-v, --verbose", description: verbose, conflicts: "quiet" },
    { flags: "-q, --quiet", description: "show only the result and errors" },
    {
      flags: "--color <when>",
      description: "colour our own output: auto (on a terminal, unless NO_COLOR is set), always, never",
      choices: ["auto", "always", "never"],
      default: "auto",
    },
  ];
}

/** Output of a command that renders or builds. */
export const OUTPUT = output("also show the rendered files, the Nix used and Nix's own messages");

/** Output of a housekeeping command (it renders no files). */
export const HOUSEKEEPING_OUTPUT = output("also show the Nix used and Nix's own messages");

/** Output of a command that builds. */
export const BUILD_OUTPUT: readonly OptionSpec[] = [
  ...OUTPUT,
  { flags: "-L, --print-build-logs", description: "show every builder's log lines, prefixed with the package name" },
  { flags: "--no-progress", description: "show Nix's own build output instead of the live progress" },
];

/**
 * Nix's `--option NAME VALUE` (two words) as the `--option NAME=VALUE` the
 * parser takes. A setting's name never holds `=`, so a word that does is the
 * one-word form.
 */
export function joinNixOptionArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const name = argv[i + 1];
    const value = argv[i + 2];
    if (word === "--option" && name !== undefined && !name.includes("=") && value !== undefined) {
      out.push(word, `${name}=${value}`);
      i += 2;
    } else {
      out.push(word);
    }
  }
  return out;
}
