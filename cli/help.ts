// What a command's --help says after its flags: its examples (declared
// with the command, in cli/commands/), the environment variables it reads
// (described here once) and its exit codes.
import type { Command } from "commander";

const ENVIRONMENT = {
  WORKERS_DIR: "where worker slots keep their VMs (default: $XDG_STATE_HOME/nixos-closure/workers)",
  WORKER_INDEX: "this worker slot (default: 0); config dirs are $WORKERS_DIR/$WORKER_INDEX/nix/<vm-name>",
  XDG_STATE_HOME: "the default WORKERS_DIR's parent (default: ~/.local/state)",
  NIX_BIN: "the directory holding the nix to run (default: /nix/var/nix/profiles/default/bin, then PATH)",
  NIX_CONFIG: "Nix settings for every Nix call, as Nix reads it",
  NIXOS_FLAKE_DIR: "the nixos-flake library, when --nixos-flake is not given",
  VENDOR_DIR: "where a vendored nixos-flake library is looked for ($VENDOR_DIR/nixos-flake)",
  SYSTEM_DIR: "where the managed SSH key is looked for ($SYSTEM_DIR/ssh/id_ed25519.pub)",
  NIXOS_CLOSURE_LOCK_WAIT: "seconds to wait for another run holding the VM (default: 60)",
  NIXOS_CLOSURE_ALLOW_INPUT_KEYS: "1 lets --trusted-public-key and --input name cache keys (the operator's choice)",
  NO_COLOR: "any value: no colour (unless --color=always)",
  TERM: "dumb: plain progress lines, no redrawing",
} as const;

/** What every command on a worker reads. */
export const COMMON_ENVIRONMENT = [
  "WORKERS_DIR",
  "WORKER_INDEX",
  "XDG_STATE_HOME",
  "NIX_BIN",
  "NIX_CONFIG",
  "NIXOS_CLOSURE_LOCK_WAIT",
  "NO_COLOR",
] as const;

/** What a command that runs the whole flow (or plans it) reads. */
export const FLOW_ENVIRONMENT = [
  ...COMMON_ENVIRONMENT,
  "NIXOS_FLAKE_DIR",
  "VENDOR_DIR",
  "SYSTEM_DIR",
  "NIXOS_CLOSURE_ALLOW_INPUT_KEYS",
  "TERM",
] as const;

/** The exit codes of a command that runs the flow's steps or housekeeping. */
export const EXIT_CODES = [
  "  0    success",
  "  1    Nix failed (its own words follow `error:`), or the machine did (a file, a missing nix)",
  "  2    bad input: the flag or field and its value are named; nothing was written",
  "  130  interrupted (Ctrl-C; 143 for SIGTERM): the previous result link is kept",
];

/** What a command's --help says after its flags (each command's module declares it). */
export interface CommandHelp {
  /** Two or three command lines, each starting with `nixos-closure <command>`. */
  examples: string[];
  /** The variables it reads, by name (described here once). */
  environment: readonly (keyof typeof ENVIRONMENT)[];
  /** Its exit codes, when not EXIT_CODES. */
  exitCodes?: string[];
}

/** Adds the examples, environment and exit codes to a command's --help. */
export function addHelpFooter(command: Command, help: CommandHelp): Command {
  const width = Math.max(...help.environment.map((name) => name.length));
  const sections = [
    ["Examples:", ...help.examples.map((line) => `  $ ${line}`)],
    ...(help.environment.length > 0
      ? [["Environment:", ...help.environment.map((name) => `  ${name.padEnd(width)}  ${ENVIRONMENT[name]}`)]]
      : []),
    ["Exit codes:", ...(help.exitCodes ?? EXIT_CODES)],
  ];
  return command.addHelpText("after", `\n${sections.map((lines) => lines.join("\n")).join("\n\n")}`);
}

export const PROGRAM_FOOTER = [
  "",
  "Examples:",
  "  $ nixos-closure demo                                   the whole flow, offline, against bundled examples",
  "  $ nixos-closure build --vm-name vm1 --profile devel    render, lock and build a VM",
  "  $ nixos-closure list                                   the VMs of this worker slot",
  "",
  "Run `nixos-closure <command> --help` for a command's flags, environment and exit codes.",
].join("\n");
