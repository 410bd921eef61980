// Sources Nix copies into the store while it locks: Nix says nothing until
// it is done, so a copy that takes long is shown by us. After a second, a
// terminal gets a line per source, redrawn with its time ("copying
// /home/me/src/xfsprogs: 1.2 GiB  00:03") and replaced by one line when the
// lock is done; a job log gets the line once.
import { formatBytes, formatClock, formatSeconds } from "../../core/format.ts";
import type { Logger } from "../../core/log.ts";
import { fitColumns, LiveArea, printable } from "./live_area.ts";

export interface CopiedSource {
  /** What is copied, in words: a directory, or a work tree's tracked files. */
  what: string;
  /** Its bytes, measured only once the copy takes long. */
  bytes: () => number;
}

/** How long a lock runs before its copies are shown. */
const SHOW_AFTER_MS = 1000;
const TICK_MS = 1000;

export interface CopyWatch {
  /** A line Nix printed meanwhile: it goes above the live lines. */
  line(text: string): void;
  /** The lock is done (or failed): the live lines go. */
  finish(): void;
}

/** Watches the copies of `sources` while a lock runs; they are shown once it has run `showAfterMs`. */
export function watchCopies(log: Logger, sources: readonly CopiedSource[], showAfterMs = SHOW_AFTER_MS): CopyWatch {
  const quiet = log.verbosity === "quiet";
  const area = !quiet && log.terminal ? new LiveArea(log, log.terminal) : null;
  const started = performance.now();
  let sizes: string[] | null = null;
  const lines = () =>
    (sizes ?? []).map((line) => {
      const plain = fitColumns(`copying ${line}  ${formatClock(performance.now() - started)}`, (log.terminal?.columns ?? 80) - 1);
      return { plain, styled: log.style.dim(plain) };
    });
  let tick: NodeJS.Timeout | undefined;
  const show = setTimeout(() => {
    sizes = sources.map((s) => `${s.what}: ${formatBytes(s.bytes())}`);
    if (area) {
      area.draw(lines());
      tick = setInterval(() => area.draw(lines()), TICK_MS);
      tick.unref();
    } else if (!quiet) {
      for (const size of sizes) log.info(`copying ${size} into the store`);
    }
  }, showAfterMs);
  show.unref();
  return {
    line(text) {
      if (area && sizes !== null) area.draw(lines(), [printable(text)]);
      else log.info(text);
    },
    finish() {
      clearTimeout(show);
      clearInterval(tick);
      if (area && sizes !== null) {
        const took = formatSeconds((performance.now() - started) / 1000);
        area.draw(
          [],
          sizes.map((size) => `copied ${size} in ${took}`),
        );
      }
    },
  };
}
