// The command line's flags, in groups; each command takes only the groups
// that apply to it. Completion scripts and help are generated from the same
// definitions.
import { Argument, type Command, Option } from "commander";
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

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** What a flag's value is, for completion: one of a list, a file, a directory, a VM of this worker, or free text. */
export type ValueKind = { choices: readonly string[] } | "file" | "directory" | "vm" | "text";

const VALUE_KINDS = new WeakMap<Option, ValueKind>();

/** How to complete a flag's value (free text unless said otherwise). */
export function valueKind(option: Option): ValueKind {
  return VALUE_KINDS.get(option) ?? (option.argChoices ? { choices: option.argChoices } : "text");
}

function option(flags: string, description: string, kind?: ValueKind): Option {
  const made = new Option(flags, description);
  if (kind) VALUE_KINDS.set(made, kind);
  return made;
}

const ARGUMENT_KINDS = new WeakMap<Argument, ValueKind>();

/** How to complete an argument (free text unless said otherwise). */
export function argumentKind(argument: Argument): ValueKind {
  return ARGUMENT_KINDS.get(argument) ?? (argument.argChoices ? { choices: argument.argChoices } : "text");
}

/** An argument naming VMs of this worker (completed from their config dirs). */
export function vmArgument(name: string, description: string): Argument {
  const made = new Argument(name, description);
  ARGUMENT_KINDS.set(made, "vm");
  return made;
}

function repeatable(flags: string, description: string, kind?: ValueKind): Option {
  return option(flags, `${description} (repeatable)`, kind).argParser(collect);
}

export function addInputOption(command: Command): Command {
  return command.addOption(
    option("--input <file.json>", "a flow input {guest, closure, lock, root, nix}; the flags override its fields", "file"),
  );
}

export function addVmNameOption(command: Command): Command {
  return command.addOption(
    option("--vm-name <name>", "host name of the guest and name of its config dir (default: nixos)", "vm"),
  );
}

/** `build`'s --vm-name: several VMs of one input in one run, each distinct system evaluated once. */
function addVmNamesOption(command: Command): Command {
  return command.addOption(
    repeatable(
      "--vm-name <name>",
      "host name of the guest and name of its config dir (default: nixos); several: one VM each, then a table",
      "vm",
    ),
  );
}

export function addConfigDirOption(command: Command, description: string): Command {
  return command.addOption(option("--config-dir <dir>", description, "directory"));
}

/** The guest: who it is, what it trusts, what it mounts; `manyVms`: --vm-name may be repeated. */
export function addGuestOptions(command: Command, manyVms = false): Command {
  return (manyVms ? addVmNamesOption : addVmNameOption)(command)
    .addOption(option("--user <name>", "the unprivileged account (default: kdevops)"))
    .addOption(repeatable("--ssh-key <line>", "an OpenSSH public key line to trust"))
    .addOption(repeatable("--ssh-key-file <file>", "a file of public key lines to trust", "file"))
    .addOption(repeatable("--share <mount=tag[:opt,...]>", "a virtiofs share, e.g. /mnt/linux=linux:ro"))
    .addOption(option("--home", "share your home into the guest and make it root's home (the default)"))
    .addOption(option("--no-home", "do not share a home"))
    .addOption(option("--home-dir <dir>", "the home to share (default: $HOME under /home/, else /home/kdevops)", "directory"))
    .addOption(
      option(
        "--hostname-at-boot",
        "leave the host name to the kernel command line: append the result's kernel_params; VMs equal but for their name share one system",
      ),
    );
}

/** What goes into the closure, and from which library. */
export function addClosureOptions(command: Command): Command {
  return command
    .addOption(
      repeatable("--profile <name>", `a profile: ${PROFILES.join(", ")}; 'none' for none`, {
        choices: [...PROFILES, "none"],
      }),
    )
    .addOption(
      repeatable("--test-suite <name>", "a test suite, e.g. fstests; 'none' for none", { choices: [...TEST_SUITES, "none"] }),
    )
    .addOption(
      repeatable(
        "--override <pkg=src[#ref]>",
        "build a package from a directory or git URL (a git work tree: its tracked files; path:DIR the whole directory)",
      ),
    )
    .addOption(repeatable("--optional-override <pkg=src[#ref]>", "the same, allowed to reach nothing in this VM's closure"))
    .addOption(
      option(
        "--nixos-flake <dir|ref>",
        "the nixos-flake library: a directory or a flake reference (default: $NIXOS_FLAKE_DIR, $VENDOR_DIR/nixos-flake, else github:linux-kdevops/nixos-flake)",
        "directory",
      ),
    );
}

export function addUpdateLockOption(command: Command): Command {
  return command.addOption(option("--update-lock", "re-pin the nixos-flake library input"));
}

/** Nix's own settings: `--option NAME VALUE`, as Nix spells it. */
export function addNixOptionOption(command: Command): Command {
  return command
    .addOption(
      repeatable(
        "--option <name=value>",
        "a Nix setting, as Nix takes it (--option NAME VALUE) or NAME=VALUE; only settings safe to take from a user",
      ),
    )
    .addOption(option("--show-trace", "show Nix's whole evaluation trace when evaluation fails"));
}

/** Where and how Nix builds and fetches. */
export function addNixBuildOptions(command: Command): Command {
  return addNixOptionOption(command)
    .addOption(option("--builders <spec>", "remote build machines (Nix's builders setting)"))
    .addOption(repeatable("--substituter <uri>", "an extra binary cache"))
    .addOption(repeatable("--trusted-public-key <key>", "a trusted cache key, name:base64"))
    .addOption(option("--max-jobs <n>", "derivations built at once here (a number or auto)"))
    .addOption(option("--cores <n>", "cores per build (0: all)"))
    .addOption(
      option("--no-eval-cache", "evaluate the system even when its inputs are unchanged (the same as --option eval-cache false)"),
    );
}

export function addDeliveryOptions(command: Command): Command {
  return command
    .addOption(repeatable("--publish-to <uri>", "copy the built closure to this store, e.g. ssh-ng://vmhost"))
    .addOption(option("--substitute-on-destination", "let destinations fetch from their own caches"));
}

/** The prepared root: where, and what goes into it besides the system. */
export function addRootOptions(command: Command): Command {
  return command
    .addOption(option("--root-dir <dir>", "where the root appears (default: <config_dir>/root)", "directory"))
    .addOption(repeatable("--closure <path>", "a store path whose closure also goes into the root", "file"))
    .addOption(repeatable("--closure-file <file>", "a nix-store --export file of a closure to import into the root", "file"))
    .addOption(option("--channel <path>", "a store path set as root's channels profile in the root", "file"))
    .addOption(option("--nix-build", "build the root with Nix as a store path (to ship) instead of hard-linking it"));
}

/** How much is shown, and how; `verbose` says what -v adds on this command. */
export function addOutputOptions(
  command: Command,
  verbose = "also show the rendered files, the Nix used and Nix's own messages",
): Command {
  return command
    .addOption(option("--json", "print the result as JSON, as the last line of stdout; logs go to stderr"))
    .addOption(option("-v, --verbose", verbose).conflicts("quiet"))
    .addOption(option("-q, --quiet", "show only the result and errors"))
    .addOption(
      option("--color <when>", "colour our own output: auto (on a terminal, unless NO_COLOR is set), always, never")
        .choices(["auto", "always", "never"])
        .default("auto"),
    );
}

/** Output of a command that builds. */
export function addBuildOutputOptions(command: Command): Command {
  return addOutputOptions(command)
    .addOption(option("-L, --print-build-logs", "show every builder's log lines, prefixed with the package name"))
    .addOption(option("--no-progress", "show Nix's own build output instead of the live progress"));
}

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
