// Reads init and initrd of a built system from its NixOS bootspec (RFC-0125):
// the imageless backend turns the kernel off, so the toplevel has no
// `initrd` link and `init` must come from here.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { SetupError } from "../core/errors.ts";
import { FileRefused, readSmallFile } from "../core/files.ts";

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
  } catch {
    // JSON.parse's message quotes the text, which is the system author's: only where the file is goes in ours.
    throw new SetupError(`${file} is not valid JSON; the bootspec cannot be read`);
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

/** A bootspec is a few kilobytes; a larger file is not one. */
const MAX_BOOTSPEC_BYTES = 1024 * 1024;

/**
 * init and initrd from the bootspec `file` of a system in `store` (this
 * host's store, or a root's), or null when there is none. The file is the
 * system's author's: it is read only where it leads inside that store, as a
 * small regular file (never a FIFO, a device, or a file of this host a link
 * points to), and its content is never quoted (messages name it `shownAs`).
 */
export function readBootspec(file: string, store: string, shownAs = file): { init: string; initrd: string | null } | null {
  let text: string;
  try {
    text = readSmallFile(file, MAX_BOOTSPEC_BYTES, { within: store });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    if (error instanceof FileRefused) throw new SetupError(`${error.message}; the bootspec cannot be read`);
    throw error;
  }
  return parseBootspec(text, shownAs);
}

/** init and initrd of a toplevel; falls back to `<toplevel>/init` (with a warning) when there is no boot.json. */
export function readBootInfo(toplevel: string): BootInfo {
  const file = join(toplevel, "boot.json");
  const boot = readBootspec(file, dirname(toplevel));
  if (boot !== null) return { ...boot, bootJson: file, warnings: [] };
  const init = join(toplevel, "init");
  if (!existsSync(init)) throw new SetupError(`${toplevel} has neither boot.json nor init: it is not a NixOS system`);
  return {
    init,
    initrd: null,
    bootJson: null,
    warnings: [`${toplevel} has no boot.json (bootspec disabled?): using ${init}; initrd unknown`],
  };
}
