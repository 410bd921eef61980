// The steps' cores run against a workbench, each with a context of its own
// (the workbench's environment, a logger that keeps what was said), and the
// Windmill mains run the same way through withContextOptions. Waits are on
// the condition itself (a lock held, a line said), each with a deadline.

import { spawnSync } from "node:child_process";
import type { RenderInput } from "../../f/nix/lib/config/model.ts";
import type { Logger, Verbosity } from "../../f/nix/lib/core/log.ts";
import { streamLogger } from "../../f/nix/lib/core/log.ts";
import type { NixSettingsInput } from "../../f/nix/lib/nix/settings.ts";
import { nixSettings } from "../../f/nix/lib/nix/settings.ts";
import { type BuildClosureResult, buildClosure } from "../../f/nix/lib/steps/building.ts";
import {
  type Context,
  type ContextOptions,
  createContext,
  type ProgressMode,
  settingsPolicy,
  withContextOptions,
} from "../../f/nix/lib/steps/context.ts";
import { type LockResult, lockConfig } from "../../f/nix/lib/steps/locking.ts";
import { type PlanResult, planBuild } from "../../f/nix/lib/steps/planning.ts";
import { type RenderResult, renderConfig } from "../../f/nix/lib/steps/rendering.ts";
import { type PrepareRootResult, prepareRoot } from "../../f/nix/lib/steps/root_preparation.ts";
import type { RootFields } from "../../f/nix/lib/steps/root_request.ts";
import { type LockHolder, withDirLock } from "../../f/nix/lib/worker/dir_lock.ts";
import type { Workbench } from "./workbench.ts";

/** A logger that keeps everything it is told (and echoes it with NIXOS_CLOSURE_TEST_ECHO=1). */
export interface CapturedLog extends Logger {
  text(): string;
}

export function captureLog(
  terminal: { columns: number; rows?: number } | null = null,
  verbosity: Verbosity = "verbose",
): CapturedLog {
  const chunks: string[] = [];
  const echo = process.env.NIXOS_CLOSURE_TEST_ECHO === "1";
  const inner = streamLogger(
    {
      write: (text: string) => {
        chunks.push(text);
        if (echo) process.stderr.write(text);
      },
      isTTY: terminal !== null,
      columns: terminal?.columns ?? 80,
      rows: terminal?.rows ?? 24,
    },
    { verbosity },
  );
  return { ...inner, text: () => chunks.join("") };
}

export interface StepOptions {
  /** The flow's nix group for the step. */
  nix?: NixSettingsInput;
  log?: Logger;
  signal?: AbortSignal;
  progress?: ProgressMode;
  /** Variables on top of the workbench's environment. */
  env?: Record<string, string>;
}

export function contextOptions(wb: Workbench, options: StepOptions = {}): ContextOptions {
  return {
    env: { ...wb.env, ...options.env },
    log: options.log ?? captureLog(),
    signal: options.signal ?? new AbortController().signal,
    ...(options.progress ? { progress: options.progress } : {}),
  };
}

export function testContext(wb: Workbench, step: string, options: StepOptions = {}): Context {
  const context = contextOptions(wb, options);
  return createContext(step, nixSettings(options.nix ?? null, "nix_settings", settingsPolicy(context.env)), context);
}

/** Runs a Windmill main (or anything calling runStep) with the workbench as its worker. */
export function asWorker<T>(wb: Workbench, work: () => Promise<T>, options: StepOptions = {}): Promise<T> {
  return withContextOptions(contextOptions(wb, options), work);
}

export interface VmSteps {
  render(input: RenderInput): Promise<RenderResult>;
  lock(configDir: string, updateLibrary?: boolean): Promise<LockResult>;
  build(configDir: string, optionalOverrides?: readonly string[]): Promise<BuildClosureResult>;
  plan(configDir: string, optionalOverrides?: readonly string[]): Promise<PlanResult>;
  prepareRoot(configDir: string, toplevel?: string, rootDir?: string, fields?: RootFields): Promise<PrepareRootResult>;
  /** render -> lock -> build of one input. */
  renderLockBuild(input: RenderInput): Promise<BuildClosureResult>;
}

/** The steps against a workbench, each call with a fresh context made with `options`. */
export function vmSteps(wb: Workbench, options: StepOptions = {}): VmSteps {
  const context = (step: string) => testContext(wb, step, options);
  const steps: VmSteps = {
    render: (input) => renderConfig(context("render_config"), null, input),
    lock: (configDir, updateLibrary = false) => lockConfig(context("lock_config"), configDir, updateLibrary),
    build: (configDir, optional = []) => buildClosure(context("build_closure"), configDir, optional),
    plan: (configDir, optional = []) => planBuild(context("build_closure"), configDir, optional),
    prepareRoot: (configDir, toplevel = "", rootDir = "", fields = {}) =>
      prepareRoot(context("prepare_root"), configDir, toplevel, rootDir, fields),
    async renderLockBuild(input) {
      const rendered = await steps.render(input);
      await steps.lock(rendered.config_dir);
      return steps.build(rendered.config_dir);
    },
  };
  return steps;
}

/** Resolves with `promise`, or fails the test after `ms` naming what it waited for (after `onTimeout`, e.g. killing a child). */
export async function within<T>(ms: number, what: string, promise: Promise<T>, onTimeout: () => void = () => {}): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`waited ${ms} ms for ${what}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `condition` holds (checked every 50 ms); fails after `ms` (after `onTimeout`), naming what it waited for. */
export function waitFor(ms: number, what: string, condition: () => boolean, onTimeout: () => void = () => {}): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = setInterval(() => {
      if (condition()) {
        clearInterval(check);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(check);
        onTimeout();
        reject(new Error(`waited ${ms} ms for ${what}`));
      }
    }, 50);
  });
}

/** What withDirLock needs, for a test taking a lock itself. */
export function lockHolder(step: string, lockWaitSeconds: number, signal = new AbortController().signal): LockHolder {
  return { step, log: captureLog(), env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, lockWaitSeconds, signal };
}

/** A lock a test holds, as a step would, until it lets it go. */
export interface HeldLock {
  /** Lets the lock go, and resolves once it is free. */
  release(): Promise<void>;
}

/** Takes the lock of `dir` as `step` (waiting up to 5 s for another holder); resolves once it is held and names its holder. */
export async function holdLock(dir: string, step: string): Promise<HeldLock> {
  let taken: () => void = () => {};
  let release: () => void = () => {};
  const took = new Promise<void>((resolve) => (taken = resolve));
  const held = withDirLock(dir, lockHolder(step, 5), () => {
    taken();
    return new Promise<void>((resolve) => (release = resolve));
  });
  await within(10_000, `the lock of ${dir}`, Promise.race([took, held]));
  return {
    release: async () => {
      release();
      await held;
    },
  };
}

/** Whether some process holds a flock(2) lock on `file` now (asked without waiting, as flock(1) does). */
export function isFlocked(file: string): boolean {
  const busy = 75;
  const asked = spawnSync("flock", ["--nonblock", "--conflict-exit-code", String(busy), file, "true"]);
  if (asked.status !== 0 && asked.status !== busy) throw new Error(`flock ${file}: ${asked.stderr}`);
  return asked.status === busy;
}
