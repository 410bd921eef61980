// The whole render input, validated and composed into a GuestConfig, or an
// InputError that names the field and the value. Reads the disk (to check
// override directories) but never writes.
import { InputError } from "../core/errors.ts";
import { runningUid } from "../core/process.ts";
import { checkDepth, expectBoolean, expectString, isBlank, oneOf } from "./fields.ts";
import {
  DEFAULT_PROFILES,
  DEFAULT_TEST_SUITES,
  DEFAULT_USER_NAME,
  DEFAULT_VM_NAME,
  type GuestConfig,
  PROFILES,
  type RenderInput,
  TEST_SUITES,
} from "./model.ts";
import { overrides } from "./overrides.ts";
import { homeDir, shares } from "./shares.ts";
import { type ManagedKey, sshKeys } from "./ssh_keys.ts";

/** What validation needs from the worker besides the input. */
export interface ValidationContext {
  /** The managed VM key, or null when the worker has none. */
  managedKey: ManagedKey | null;
  /** Mount point of the home share when `home_dir` is empty. */
  defaultHome: string;
  /** The user the step runs as (default: this process's): the owner whose private files a source may publish, and whose git work trees git reads. */
  uid?: number;
}

/** NixOS's networking.hostName pattern (the option's own type). */
const HOSTNAME = /^$|^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;
/** System accounts NixOS (and the services the profiles enable) create themselves; nixbld* and systemd-* too. */
const RESERVED_USER_NAMES: readonly string[] = [
  "nobody",
  "messagebus",
  "sshd",
  "polkituser",
  "nscd",
  "dhcpcd",
  "rtkit",
  "avahi",
  "qemu-libvirtd",
  "sysstat",
  "nm-openvpn",
  "nm-iodine",
];

/** Linux account names as shadow-utils accepts them, dots included. */
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,30}[$]?$/;

/** Whether a directory name could be a VM's (render_config never makes another). */
export function isVmName(name: string): boolean {
  return name !== "" && HOSTNAME.test(name);
}

export function validateVmName(value: unknown): string {
  if (isBlank(value)) return DEFAULT_VM_NAME;
  const name = expectString("vm_name", value);
  if (!HOSTNAME.test(name)) {
    throw new InputError(
      "vm_name",
      name,
      "is not a valid NixOS host name: use letters, digits, '-' and '_' (at most 63 characters, " +
        "starting and ending with a letter or digit); it is also the config directory's name",
    );
  }
  return name;
}

function validateUserName(value: unknown): string {
  if (isBlank(value)) return DEFAULT_USER_NAME;
  const name = expectString("user_name", value);
  if (!USER_NAME.test(name)) {
    throw new InputError(
      "user_name",
      name,
      "is not a valid Linux account name: start with a lower-case letter or '_', then lower-case letters, " +
        "digits, '_', '-' or '.' (at most 32 characters)",
    );
  }
  if (name === "root") throw new InputError("user_name", name, "is the administrator account; name an unprivileged user");
  if (RESERVED_USER_NAMES.includes(name) || /^nixbld\d*$/.test(name) || name.startsWith("systemd-")) {
    throw new InputError("user_name", name, "is a system account NixOS creates for itself; name the guest's user otherwise");
  }
  return name;
}

/** Validates and composes render_config's input; throws InputError on the first problem. */
export function composeGuest(input: RenderInput, context: ValidationContext): GuestConfig {
  checkDepth("guest", input);
  const vmName = validateVmName(input.vm_name);
  const userName = validateUserName(input.user_name);
  const profiles = oneOf("profiles", input.profiles, DEFAULT_PROFILES, PROFILES);
  const testSuites = oneOf("test_suites", input.test_suites, DEFAULT_TEST_SUITES, TEST_SUITES);
  const rootHome = homeDir(input.home, input.home_dir, context.defaultHome);
  const warnings: string[] = [];
  const uid = context.uid ?? runningUid();
  return {
    vmName,
    hostnameAtBoot: expectBoolean("hostname_at_boot", input.hostname_at_boot, false),
    userName,
    profiles,
    testSuites,
    sshKeys: sshKeys(input.ssh_keys, context.managedKey),
    shares: shares(input.shares, testSuites, rootHome),
    rootHome,
    overrides: overrides(input.overrides, input.extra_overrides, uid, warnings),
    warnings,
  };
}
