// Numbers as an operator reads them: sizes in binary units, one precision
// for durations, and counts with the right noun.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `512 B`, `12.3 KiB`, `-1.5 MiB`. */
export function formatBytes(bytes: number): string {
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${bytes < 0 ? "-" : ""}${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}

/** `3 derivations`, `1 derivation`. */
export function plural(n: number, singular: string, pluralForm = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : pluralForm}`;
}

/** Seconds with one decimal: `41.2 s`. */
export function formatSeconds(seconds: number): string {
  return `${seconds.toFixed(1)} s`;
}

/** Elapsed time as a clock: `01:23`, `1:02:03`. */
export function formatClock(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
