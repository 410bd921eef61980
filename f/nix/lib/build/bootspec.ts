// Reads init and initrd of a built system from its NixOS bootspec (RFC-0125):
// the imageless backend turns the kernel off, so the toplevel has no
// `initrd` link and `init` must come from here.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SetupError } from "../core/errors.ts";

const BOOTSPEC_V1 = "org.nixos.bootspec.v1";

export interface BootInfo {
  init: string;
  initrd: string | null;
  /** The bootspec file read, or null when the system has none. */
  bootJson: string | null;
  warnings: string[];
}

/** Parses boot.json text: `init` required, `initrd` optional, anything else ignored. */
export function parseBootspec(text: string, file: string): { init: string; initrd: string | null } {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new SetupError(`${file} is not valid JSON (${(error as Error).message}); the bootspec cannot be read`);
  }
  const v1 = (document as Record<string, unknown> | null)?.[BOOTSPEC_V1];
  if (typeof v1 !== "object" || v1 === null || Array.isArray(v1)) {
    throw new SetupError(`${file} has no "${BOOTSPEC_V1}" object; it is not a bootspec v1 document`);
  }
  const { init, initrd } = v1 as Record<string, unknown>;
  if (typeof init !== "string" || init === "") throw new SetupError(`${file}: "${BOOTSPEC_V1}".init is missing or not a string`);
  if (initrd !== undefined && initrd !== null && typeof initrd !== "string") {
    throw new SetupError(`${file}: "${BOOTSPEC_V1}".initrd is not a string`);
  }
  return { init, initrd: typeof initrd === "string" && initrd !== "" ? initrd : null };
}

/** init and initrd of a toplevel; falls back to `<toplevel>/init` (with a warning) when there is no boot.json. */
export function readBootInfo(toplevel: string): BootInfo {
  const file = join(toplevel, "boot.json");
  if (existsSync(file)) return { ...parseBootspec(readFileSync(file, "utf8"), file), bootJson: file, warnings: [] };
  const init = join(toplevel, "init");
  if (!existsSync(init)) throw new SetupError(`${toplevel} has neither boot.json nor init: it is not a NixOS system`);
  return {
    init,
    initrd: null,
    bootJson: null,
    warnings: [`${toplevel} has no boot.json (bootspec disabled?): using ${init}; initrd unknown`],
  };
}
