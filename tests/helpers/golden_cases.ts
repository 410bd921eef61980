// Representative inputs whose renders are kept in tests/golden/<case>/.
// Regenerate with `npx tsx scripts/update-golden.ts` and review the diff.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EXAMPLES_DIR } from "../../cli/examples.ts";
import { composeGuest, type ValidationContext } from "../../f/nix/lib/config/guest.ts";
import type { RenderInput } from "../../f/nix/lib/config/model.ts";
import { renderDefault, renderFlake } from "../../f/nix/lib/config/render.ts";

export const GOLDEN_DIR = join(import.meta.dirname, "..", "golden");
export const LIBRARY = "/srv/vendor/nixos-flake";
export const TEMPLATE = join(EXAMPLES_DIR, "nixos-flake", "templates", "imageless", "flake.nix");

export const ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q";
export const MANAGED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdbqnsYxuvEH6nUFrU1xbuHAtDcIrjRz5zWbjqR6VVb kdevops-managed";

export interface GoldenCase {
  name: string;
  input: RenderInput;
  context: ValidationContext;
}

export const GOLDEN_CASES: GoldenCase[] = [
  {
    name: "minimal",
    input: { vm_name: "nixos", profiles: [], test_suites: [] },
    context: { managedKey: null, defaultHome: "/home/kdevops" },
  },
  {
    name: "defaults",
    input: {},
    context: { managedKey: { path: "/srv/system/ssh/id_ed25519.pub", line: MANAGED }, defaultHome: "/home/kdevops" },
  },
  {
    name: "everything",
    input: {
      vm_name: "xfs-crc_01",
      profiles: ["devel", "controller", "monitoring", ""],
      test_suites: ["fstests", "selftests"],
      shares: {
        "/mnt/linux": { tag: "linux", options: ["ro", ""] },
        "/var/lib/xfstests": { tag: "xfstests-results" },
        "": {},
      },
      overrides: [
        { pkg: "fio", src: "/usr/share/common-licenses", attrs: { autoreconfPhase: "make configure", preBuild: 'echo "${x}"' } },
        {},
      ],
      extra_overrides: [{ pkg: "kmod", src: "https://git.kernel.org/pub/scm/utils/kernel/kmod/kmod.git", ref: "v33" }],
      ssh_keys: [`${ED25519} dev@laptop`, "", `${MANAGED.split(" ").slice(0, 2).join(" ")} duplicate of the managed key`],
      user_name: "john.doe",
      home: true,
      home_dir: "/home/john.doe",
    },
    context: { managedKey: { path: "/srv/system/ssh/id_ed25519.pub", line: MANAGED }, defaultHome: "/home/kdevops" },
  },
  {
    // The host name given at boot: no name in the system, so VMs equal but for their name render equal files.
    name: "hostname-at-boot",
    input: { vm_name: "xfs_crc", hostname_at_boot: true, test_suites: ["fstests"], ssh_keys: [ED25519] },
    context: { managedKey: null, defaultHome: "/home/kdevops" },
  },
];

export function renderCase(c: GoldenCase): { flake: string; defaultNix: string } {
  const guest = composeGuest(c.input, c.context);
  return {
    flake: renderFlake(readFileSync(TEMPLATE, "utf8"), TEMPLATE, LIBRARY, guest.overrides),
    defaultNix: renderDefault(guest),
  };
}
