// What the CLI shows: its logger (how much, in colour or not, live or plain)
// and each command's result as text or JSON.
import { type BuildPlan, formatPlan } from "../f/nix/lib/build/plan.ts";
import { formatBytes, formatSeconds, plural } from "../f/nix/lib/core/format.ts";
import { createStyle, type Logger, type Style, streamLogger, type Verbosity } from "../f/nix/lib/core/log.ts";
import type { Env } from "../f/nix/lib/core/process.ts";
import type { Collection, VmInfo } from "../f/nix/lib/steps/vms.ts";
import type { OutputFlags } from "./options.ts";

/** Whether stderr is a terminal we may draw on: `TERM=dumb` gets plain lines. */
function drawable(env: Env): boolean {
  return process.stderr.isTTY === true && env.TERM !== "dumb";
}

/** `--color`, then NO_COLOR (any non-empty value), then whether stderr is a terminal. */
export function colorOf(flags: OutputFlags, env: Env): boolean {
  if (flags.color === "always") return true;
  if (flags.color === "never") return false;
  return (env.NO_COLOR ?? "") === "" && drawable(env);
}

export function verbosityOf(flags: OutputFlags): Verbosity {
  return flags.quiet ? "quiet" : flags.verbose ? "verbose" : "normal";
}

/** The logger of a CLI run: stderr, at the verbosity and colour the flags ask for. */
export function cliLogger(flags: OutputFlags, env: Env): Logger {
  return streamLogger(process.stderr, { verbosity: verbosityOf(flags), terminal: drawable(env), color: colorOf(flags, env) });
}

/** The style of the CLI's own error lines, from the arguments alone (they may be what failed to parse). */
export function errorStyle(argv: readonly string[], env: Env): Style {
  const at = argv.findIndex((word) => word === "--color" || word.startsWith("--color="));
  const word = argv[at] ?? "";
  const value = word.startsWith("--color=") ? word.slice("--color=".length) : argv[at + 1];
  return createStyle(colorOf({ color: value === "always" || value === "never" ? value : "auto" }, env));
}

/** Result fields that are sizes: shown in binary units in text, bytes in JSON. */
const SIZE_FIELDS = /(^|_)(nar_size|size|bytes|frees)$/;

interface Timing {
  evaluation_seconds: number | null;
  build_seconds: number | null;
  total_seconds: number;
}

/**
 * A step's result as text on stdout: its one-line fields, aligned, and the
 * time it took. Tables (the closure report, the plan) were shown in the log;
 * multi-line texts (the rendered files) are -v's.
 */
export function printResult(result: Record<string, unknown>, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  if (result.plan && !result.toplevel) {
    process.stdout.write(`${formatPlan(result.plan as BuildPlan)}\n`);
    return;
  }
  const meaningfulNull = ["initrd"];
  // Whether the system was evaluated is the time line's to say (and the log's, whose record it shared).
  const said = ["evaluated", "evaluated_by"];
  const shown = Object.entries(result).filter(
    ([k, v]) =>
      !said.includes(k) &&
      ((typeof v !== "object" && v !== undefined && !(typeof v === "string" && v.includes("\n"))) ||
        (v === null && meaningfulNull.includes(k))),
  );
  // What the caller must put on the guest's kernel command line is shown whole, as one line to paste.
  const params = result.kernel_params;
  if (Array.isArray(params) && params.length > 0) shown.push(["kernel_params", params.join(" ")]);
  const width = Math.max(4, ...shown.map(([k]) => k.length));
  for (const [key, value] of shown) {
    const text = typeof value === "number" && SIZE_FIELDS.test(key) ? formatBytes(value) : (value ?? "(none)");
    process.stdout.write(`${key.padEnd(width)}  ${text}\n`);
  }
  const timing = result.timing as Timing | undefined;
  if (timing) {
    const parts =
      result.evaluated === false
        ? [`evaluation skipped (a record of the same inputs, from ${String(result.evaluated_by)}), `]
        : timing.evaluation_seconds === null || timing.build_seconds === null
          ? []
          : [`evaluation ${formatSeconds(timing.evaluation_seconds)}, build ${formatSeconds(timing.build_seconds)}, `];
    process.stdout.write(`${"time".padEnd(width)}  ${parts.join("")}total ${formatSeconds(timing.total_seconds)}\n`);
  }
}

/** How `list` fits its table: to a terminal's width (null: no limit), store paths whole or short. */
export interface TableFit {
  columns: number | null;
  fullPaths: boolean;
}

/** The columns of `list` that go first when the table is wider than the window (the VM and its state stay). */
const DROPPED_FIRST = ["worker", "toplevel", "only its own", "built", "closure"];

export function formatVms(vms: readonly VmInfo[], fit: TableFit = { columns: null, fullPaths: true }): string {
  if (vms.length === 0) return "no VMs on this worker slot\n";
  const header = ["VM", "worker", "state", "built", "closure", "only its own", "toplevel"];
  const rows = vms.map((vm) => [
    vm.vm_name,
    vm.worker,
    vm.state,
    vm.built_at?.slice(0, 16).replace("T", " ") ?? "-",
    vm.toplevel ? formatBytes(vm.closure_size) : "-",
    vm.toplevel ? formatBytes(vm.unique_size) : "-",
    vm.toplevel ? (fit.fullPaths ? vm.toplevel : shortStorePath(vm.toplevel)) : "-",
  ]);
  const kept = header.map(() => true);
  const widthOf = (i: number) => Math.max((header[i] as string).length, ...rows.map((r) => (r[i] ?? "").length));
  const tableWidth = () => header.reduce((total, _, i) => (kept[i] ? total + widthOf(i) + 2 : total), 0) - 2;
  for (const name of DROPPED_FIRST) {
    if (fit.columns === null || tableWidth() <= fit.columns) break;
    kept[header.indexOf(name)] = false;
  }
  const line = (cells: string[]) =>
    cells
      .flatMap((cell, i) => (kept[i] ? [cell.padEnd(widthOf(i))] : []))
      .join("  ")
      .trimEnd();
  const table = [line(header), ...rows.map(line)];
  // Wherever they are: remove takes them with their VM.
  const roots = vms.flatMap((vm) => vm.root_dirs.map((root) => `  ${vm.vm_name}  ${root}`));
  return `${[...table, ...(roots.length > 0 ? ["", "prepared roots:", ...roots] : [])].join("\n")}\n`;
}

export function printCleanUp(result: Collection, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const verb = result.removed.some((r) => r.dry_run) ? "would remove" : "removed";
  for (const r of result.removed)
    process.stdout.write(`${verb} ${r.vm_name}: the next nix-store --gc can free ${formatBytes(r.frees)}\n`);
  if (result.removed.length === 0) {
    const looked = result.removed.length + result.in_use.length + result.kept.length;
    process.stdout.write(looked > 0 ? `nothing to remove of the ${plural(looked, "VM")} looked at\n` : "nothing to remove\n");
  }
  for (const name of result.in_use) process.stdout.write(`kept ${name}: in use\n`);
  for (const { vm_name, reason } of result.kept) process.stdout.write(`kept ${vm_name}: ${reason}\n`);
  if (result.collected) process.stdout.write(`${result.collected}\n`);
  if (result.forgotten_records > 0)
    process.stdout.write(`forgot ${plural(result.forgotten_records, "evaluation record")} of systems no longer in the store\n`);
}

/** One VM's run in a build of several, as the table shows it. */
export interface VmRunRow {
  vm: string;
  exitCode: number;
  seconds: number;
  result: Record<string, unknown> | null;
}

/** `/nix/store/<hash>-nixos-system-vm1-26.05` -> `<first 7 of hash>…-nixos-system-vm1-26.05` */
function shortStorePath(path: string): string {
  const base = path.replace(/^.*\//, "");
  return base.length > 40 ? `${base.slice(0, 7)}…${base.slice(32)}` : base;
}

/** The table that ends a build of several VMs: each VM, its system, whether it was evaluated or shared, its time. */
export function formatVmRuns(runs: readonly VmRunRow[]): string {
  // With hostname_at_boot each VM boots with its own name on the kernel command line: the table says which.
  const params = (run: VmRunRow) => (Array.isArray(run.result?.kernel_params) ? run.result.kernel_params.join(" ") : "");
  const withParams = runs.some((run) => params(run) !== "");
  const rows = runs.map((run) => {
    const toplevel = run.result?.toplevel;
    const system = typeof toplevel === "string" ? shortStorePath(toplevel) : "-";
    const evaluation =
      run.exitCode !== 0
        ? `failed (exit ${run.exitCode})`
        : run.result?.evaluated === false
          ? run.result.evaluated_by === run.vm
            ? "unchanged"
            : `shared (${String(run.result.evaluated_by)})`
          : typeof toplevel === "string"
            ? "evaluated"
            : "planned";
    return [run.vm, system, evaluation, formatSeconds(run.seconds), ...(withParams ? [params(run) || "-"] : [])];
  });
  const header = ["VM", "system", "evaluation", "time", ...(withParams ? ["kernel_params"] : [])];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}
