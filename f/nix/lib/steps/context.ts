// The one context every step runs with, built here and passed down: the
// environment (worker paths, what child processes get), the logger, the
// validated Nix settings, the located Nix, and the abort signal of an
// interrupt. This is the only module that reads process.env.
import { AsyncLocalStorage } from "node:async_hooks";
import { homedir } from "node:os";
import { join } from "node:path";
import { expectBoolean } from "../config/fields.ts";
import { Interrupted, SetupError } from "../core/errors.ts";
import { fileSystemMessage, isFileSystemError } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { streamLogger } from "../core/log.ts";
import { abortSignalName, type Env } from "../core/process.ts";
import { locateNix, type Nix, type NixFacts } from "../nix/locate.ts";
import { type NixSettings, nixSettings, type SettingsPolicy, settingsArgs } from "../nix/settings.ts";

/** `auto`: live progress from Nix's events; `off`: Nix's own output. */
export type ProgressMode = "auto" | "off";

export type StepName = "render_config" | "lock_config" | "build_closure" | "prepare_root";

/** How messages name what the caller can do: Windmill's steps and inputs, or the CLI's commands and flags. */
export interface Vocabulary {
  /** What runs a step: `lock_config`, or `nixos-closure lock`. */
  step(name: StepName): string;
  /** What names the library: `NIXOS_FLAKE_DIR`, or `--nixos-flake`. */
  library: string;
  /** Where else a library comes from, when the upstream one cannot be fetched (offline). */
  unfetchedLibrary: string;
}

const WINDMILL_VOCABULARY: Vocabulary = {
  step: (name) => name,
  library: "NIXOS_FLAKE_DIR (or vendor it at $VENDOR_DIR/nixos-flake)",
  unfetchedLibrary: "give closure.nixos_flake, set NIXOS_FLAKE_DIR, or vendor a checkout there ($VENDOR_DIR/nixos-flake)",
};

export interface Context {
  /** The step's name: the owner recorded in the config dir's lock, and the word in messages. */
  step: string;
  env: Env;
  log: Logger;
  /** Aborted when the step is interrupted (a cancelled job, Ctrl-C): commands stop, waits end. */
  signal: AbortSignal;
  settings: NixSettings;
  progress: ProgressMode;
  output: OutputOptions;
  /** How long to wait for another step holding the config dir. */
  lockWaitSeconds: number;
  words: Vocabulary;
  heldLocks: ReadonlySet<string>;
  /** The Nix every Nix call of this step goes through, located on first use. */
  nix(): Promise<Nix>;
}

/** What a build shows besides its progress (the CLI's -L, -v and --show-trace). */
export interface OutputOptions {
  /** Every builder's log lines, as `nix build -L`. */
  buildLogs: boolean;
  /** Nix's own messages and activities, as it prints them without a progress display. */
  chatter: boolean;
  /** Nix's evaluation traces, whole (`--show-trace`). */
  showTrace: boolean;
}

/** What a step's context is made of, besides its name and Nix settings. */
export interface ContextOptions {
  env: Env;
  log: Logger;
  signal: AbortSignal;
  /** Overrides $NIXOS_CLOSURE_PROGRESS. */
  progress?: ProgressMode;
  /** Windmill's words unless given. */
  words?: Vocabulary;
  /** Config dirs the caller holds the lock of for its whole run. */
  heldLocks?: ReadonlySet<string>;
  /** None of them unless given. */
  output?: Partial<OutputOptions>;
  /** What Nix said about itself, shared by the steps of one run (the CLI's). */
  nixFacts?: NixFacts;
}

const DEFAULT_LOCK_WAIT_SECONDS = 60;

/** $NIXOS_CLOSURE_LOCK_WAIT: seconds, a number >= 0 (a day at most); anything else is refused, not guessed. */
function lockWaitOf(env: Env): number {
  const given = env.NIXOS_CLOSURE_LOCK_WAIT;
  if (given === undefined || given === "") return DEFAULT_LOCK_WAIT_SECONDS;
  const seconds = /^\d+(\.\d+)?$/.test(given.trim()) ? Number(given) : Number.NaN;
  if (!(seconds >= 0 && seconds <= 86400)) {
    throw new SetupError(
      `NIXOS_CLOSURE_LOCK_WAIT=${JSON.stringify(given)} must be a number of seconds from 0 to 86400 (unset: ${DEFAULT_LOCK_WAIT_SECONDS})`,
    );
  }
  return seconds;
}

export function createContext(step: string, settings: NixSettings, options: ContextOptions): Context {
  const { env, log, signal } = options;
  const wait = lockWaitOf(env);
  let located: Promise<Nix> | null = null;
  const output: OutputOptions = { buildLogs: false, chatter: false, showTrace: false, ...options.output };
  const nixArgs = [...settingsArgs(settings), ...(output.showTrace ? ["--show-trace"] : [])];
  return {
    step,
    env,
    log,
    signal,
    settings,
    progress: options.progress ?? (env.NIXOS_CLOSURE_PROGRESS === "off" ? "off" : "auto"),
    output,
    lockWaitSeconds: wait,
    words: options.words ?? WINDMILL_VOCABULARY,
    heldLocks: options.heldLocks ?? new Set(),
    nix() {
      located ??= Promise.resolve().then(() => locateNix({ env, log, signal }, nixArgs, options.nixFacts));
      return located;
    },
  };
}

/**
 * An abort signal for SIGINT and SIGTERM while `dispose` is not called: the
 * running command is stopped, and the step ends with an Interrupted error
 * (its lock released, the previous result kept).
 */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const handlers = (["SIGINT", "SIGTERM"] as const).map((name) => {
    const handler = () => controller.abort(name);
    process.on(name, handler);
    return [name, handler] as const;
  });
  return {
    signal: controller.signal,
    dispose: () => {
      for (const [name, handler] of handlers) process.off(name, handler);
    },
  };
}

/** The process's environment, with the defaults of a run outside Windmill (state under $XDG_STATE_HOME, slot 0). */
export function standaloneEnv(overrides: Readonly<Record<string, string>> = {}): Env {
  const state = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return {
    ...process.env,
    WORKERS_DIR: process.env.WORKERS_DIR || join(state, "nixos-closure", "workers"),
    WORKER_INDEX: process.env.WORKER_INDEX || "0",
    ...overrides,
  };
}

const given = new AsyncLocalStorage<ContextOptions>();

/**
 * Runs `work` with the steps it calls taking their context from `options`
 * instead of this process: how the CLI (and the tests) run the flow's steps
 * in process with an environment, logger and signal of their own.
 */
export function withContextOptions<T>(options: ContextOptions, work: () => Promise<T>): Promise<T> {
  return given.run(options, work);
}

/** What the worker's operator lets the input decide, from its environment. */
export function settingsPolicy(env: Env): SettingsPolicy {
  return { inputKeys: env.NIXOS_CLOSURE_ALLOW_INPUT_KEYS === "1" };
}

/** A boolean parameter of a step: true or false, nothing else (a form or a caller may send the string "false"). */
export function expectFlag(name: string, value: unknown): boolean {
  return expectBoolean(name, value, false);
}

/**
 * What a Windmill step's `main` calls: validates the step's `nix` group,
 * builds its context (from the options given by withContextOptions, else
 * from this process: its environment, stderr, and an interrupt signal), and
 * runs the step's core with it. File-system errors come out as messages
 * naming the path. A step of this process that was interrupted ends the way
 * an interrupted program does: by its signal, once its command has stopped
 * and its lock is released.
 */
export async function runStep<T>(step: string, nixGroup: unknown, work: (context: Context) => Promise<T>): Promise<T> {
  const options = given.getStore();
  const settings = nixSettings(nixGroup, "nix_settings", settingsPolicy(options?.env ?? process.env));
  if (options) return withFileMessages(() => work(createContext(step, settings, options)));
  const interrupt = interruptSignal();
  try {
    const env: Env = { ...process.env };
    const context = createContext(step, settings, { env, log: streamLogger(process.stderr), signal: interrupt.signal });
    const result = await withFileMessages(() => work(context));
    // A cancelled job must not report success, even when its work finished first.
    if (interrupt.signal.aborted) throw new Interrupted(abortSignalName(interrupt.signal));
    return result;
  } catch (error) {
    if (error instanceof Interrupted) {
      interrupt.dispose();
      process.stderr.write(`error: ${error.message}\n`);
      process.kill(process.pid, error.signal);
    }
    throw error;
  } finally {
    interrupt.dispose();
  }
}

/** Runs `work`, turning Node's file-system errors into SetupErrors that name the operation and the path. */
async function withFileMessages<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isFileSystemError(error)) throw new SetupError(fileSystemMessage(error));
    throw error;
  }
}
