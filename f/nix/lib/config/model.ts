// Typed models of what render_config takes and what it renders from, and the
// vocabularies of the contract (profiles, test suites, curated overrides).

export const PROFILES = ["build-tools", "controller", "devel", "monitoring"] as const;
export type Profile = (typeof PROFILES)[number];
export const DEFAULT_PROFILES: readonly Profile[] = ["devel", "build-tools", "monitoring"];

/** Profiles whose import is inert until this option is set (declared by the profile). */
export const GATED_PROFILE_OPTIONS: Readonly<Partial<Record<Profile, string>>> = {
  controller: "nixos-flake.controller.enable",
  monitoring: "nixos-flake.monitoring.enable",
};

export const TEST_SUITES = ["blktests", "fstests", "gitr", "ltp", "mmtests", "pynfs", "selftests", "sysbench"] as const;
export type TestSuite = (typeof TEST_SUITES)[number];
export const DEFAULT_TEST_SUITES: readonly TestSuite[] = TEST_SUITES;

/** Packages the `overrides` input may name; `extra_overrides` may name any. */
export const CURATED_OVERRIDE_PACKAGES = ["fio", "xfstests", "xfsprogs", "libbpf-tools"] as const;

/** Mount points the imageless backend owns; a share there would conflict. */
export const BACKEND_MOUNT_POINTS = ["/", "/nix/store", "/lib/modules"] as const;

/** The share fstests gets unless the caller declared the mount point. */
export const FSTESTS_SHARE = { mountPoint: "/var/lib/xfstests", tag: "fstests" } as const;
export const HOME_SHARE_TAG = "home";
export const FALLBACK_HOME = "/home/kdevops";

/** virtio-fs limits a tag to 36 bytes. */
export const MAX_TAG_BYTES = 36;

export const DEFAULT_VM_NAME = "nixos";
export const DEFAULT_USER_NAME = "kdevops";

// --- as given (a web form or JSON: anything may be missing or blank) ---

/** The fields of a share. */
export const SHARE_FIELDS = ["tag", "options"] as const;

/** The fields of a source override; flow.yaml's schema and render_config's form declare the same (a test ties them). */
export const OVERRIDE_FIELDS = ["pkg", "src", "kind", "ref", "attrs", "optional"] as const;
/** How an override's directory is taken: as git takes a work tree (its tracked files), or whole (`path`). */
export const OVERRIDE_KINDS = ["git", "path"] as const;
export type OverrideInput = { [field in (typeof OVERRIDE_FIELDS)[number]]?: unknown };

/** The parameters of render_config, as a worker passes them. */
export interface RenderInput {
  vm_name?: string | null;
  profiles?: string[] | null;
  test_suites?: string[] | null;
  /** Keyed by guest mount point: `{"/mnt/x": {"tag": "x", "options": ["ro"]}}`. */
  shares?: object | null;
  overrides?: readonly OverrideInput[] | null;
  extra_overrides?: readonly OverrideInput[] | null;
  ssh_keys?: string[] | null;
  user_name?: string | null;
  home?: boolean | null;
  home_dir?: string | null;
  /** Leave the host name to the kernel command line (systemd.hostname=<vm_name>), so VMs equal but for their name share one system. */
  hostname_at_boot?: boolean | null;
  /** The nixos-flake library: a directory or a flake reference; empty: the worker's, else upstream's. */
  nixos_flake?: unknown;
}

// --- validated and composed: what the renderer reads ---

export interface Share {
  tag: string;
  options: string[];
}

/** A commit of a git work tree's tracked files as they are (uncommitted changes included), made without touching the tree. */
export interface WorkTreeSnapshot {
  rev: string;
  /** Whether it has submodules (Nix then fetches them too, at the commits the tree has checked out). */
  submodules: boolean;
  /** What git tracks there now: how many files, and their bytes. */
  files: number;
  bytes: number;
}

export interface SourceOverride {
  /** Where it was given (`overrides[0]`), for messages. */
  field: string;
  pkg: string;
  /** An absolute directory or a git URL. */
  src: string;
  /** `path`: the directory, whole; `git`: a git URL, or a directory that is a git work tree, as git takes it. */
  kind: (typeof OVERRIDE_KINDS)[number];
  /** A directory taken as git takes it: its snapshot is what Nix fetches (render_config takes it). */
  workTree: boolean;
  ref: string | null;
  attrs: Record<string, string>;
  /** May reach nothing in this VM's closure (else that is an error). */
  optional: boolean;
}

export interface GuestConfig {
  vmName: string;
  /** The host name comes from the kernel command line at boot: the system itself is unnamed. */
  hostnameAtBoot: boolean;
  userName: string;
  profiles: Profile[];
  testSuites: TestSuite[];
  /** Keys trusted for root and the user, the managed key first. */
  sshKeys: string[];
  /** Keyed by guest mount point, in the order they are rendered. */
  shares: Map<string, Share>;
  /** Root's home (and the home share's mount point), or null when `home` is off. */
  rootHome: string | null;
  overrides: SourceOverride[];
  /** What validation found worth saying once (render_config says it): a directory copied whole, a private tree published. */
  warnings: string[];
}
