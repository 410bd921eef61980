// What each command's --help says after its flags: examples, the
// environment variables it reads, and its exit codes.
import type { Command } from "commander";

const ENVIRONMENT: Record<string, string> = {
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
};

const COMMON = ["WORKERS_DIR", "WORKER_INDEX", "XDG_STATE_HOME", "NIX_BIN", "NIX_CONFIG", "NIXOS_CLOSURE_LOCK_WAIT", "NO_COLOR"];
const FLOW = [...COMMON, "NIXOS_FLAKE_DIR", "VENDOR_DIR", "SYSTEM_DIR", "NIXOS_CLOSURE_ALLOW_INPUT_KEYS", "TERM"];

const EXIT_CODES = [
  "  0    success",
  "  1    Nix failed (its own words follow `error:`), or the machine did (a file, a missing nix)",
  "  2    bad input: the flag or field and its value are named; nothing was written",
  "  130  interrupted (Ctrl-C; 143 for SIGTERM): the previous result link is kept",
];

interface CommandHelp {
  examples: string[];
  environment: string[];
  /** Its exit codes, when not the flow's. */
  exitCodes?: string[];
}

const HELP: Record<string, CommandHelp> = {
  build: {
    examples: [
      "nixos-closure build --vm-name vm1 --override xfsprogs=$HOME/src/xfsprogs -L    (a git work tree: its tracked files)",
      "nixos-closure build --input vm1.json --prepare-root --json",
      "nixos-closure build --hostname-at-boot --vm-name xfs_crc --vm-name xfs_reflink    (one evaluation, one system)",
    ],
    environment: FLOW,
    exitCodes: [...EXIT_CODES, "  with several --vm-name: the highest code of the VMs' runs (an interrupt stops them all)"],
  },
  plan: {
    examples: [
      "nixos-closure plan --vm-name vm1 --test-suite fstests",
      "nixos-closure build --vm-name vm1 --dry-run    (the same)",
    ],
    environment: FLOW,
  },
  render: {
    examples: [
      "nixos-closure render --vm-name vm1 --profile devel -v    (-v shows the files)",
      "nixos-closure render --input vm1.json --nixos-flake ~/src/nixos-flake",
      "nixos-closure render --vm-name vm1 --override xfsprogs=path:$HOME/src/xfsprogs    (the whole directory, not what git tracks)",
    ],
    environment: [...COMMON, "NIXOS_FLAKE_DIR", "VENDOR_DIR", "SYSTEM_DIR"],
  },
  lock: {
    examples: ["nixos-closure lock --vm-name vm1", "nixos-closure lock --vm-name vm1 --update-lock"],
    environment: COMMON,
  },
  "prepare-root": {
    examples: [
      "nixos-closure prepare-root --vm-name vm1 --root-dir /srv/vm1-root",
      "nixos-closure prepare-root --vm-name vm1 --closure $(readlink -f $(command -v nix))/../..",
      "nixos-closure prepare-root --vm-name vm1 --nix-build --json",
    ],
    environment: COMMON,
  },
  list: {
    examples: ["nixos-closure list", "nixos-closure list --all-workers --json"],
    environment: COMMON,
  },
  remove: {
    examples: ["nixos-closure remove vm1 vm2 --dry-run", "nixos-closure remove vm1 --keep-root"],
    environment: COMMON,
  },
  gc: {
    examples: ["nixos-closure gc --older-than 30d --keep 5", "nixos-closure gc --older-than 12h --collect"],
    environment: COMMON,
  },
  diff: {
    examples: ["nixos-closure diff vm1    (against its previous build)", "nixos-closure diff vm1 vm2 --json"],
    environment: COMMON,
  },
  demo: {
    examples: ["nixos-closure demo", "nixos-closure demo --keep -L"],
    environment: ["NIX_BIN", "NIX_CONFIG", "NO_COLOR", "TERM"],
  },
  completion: {
    examples: [
      "nixos-closure completion bash > ~/.local/share/bash-completion/completions/nixos-closure",
      "nixos-closure completion zsh > ~/.zfunc/_nixos-closure",
      "nixos-closure completion fish > ~/.config/fish/completions/nixos-closure.fish",
    ],
    environment: [],
    exitCodes: ["  0    success", "  2    a shell it does not know"],
  },
};

/** Adds the examples, environment and exit codes to a command's --help. */
export function addHelpFooter(command: Command): Command {
  const help = HELP[command.name()];
  if (!help) throw new Error(`no help text for the ${command.name()} command`);
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
