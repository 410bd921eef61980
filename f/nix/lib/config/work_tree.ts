// A git work tree as git takes it: its tracked files with their uncommitted
// changes, never untracked or ignored files (build output, editor files, a
// .env) nor .git itself. `git stash create` commits that state without
// touching the tree, the index's contents or any ref the user sees, and Nix
// fetches the commit by its rev: a git input locked by rev locks cleanly on
// every Nix version, where a dirty work tree locked by its NAR hash needs
// --allow-dirty-locks from Nix 2.26 on (and then on every later call too),
// and may change between the lock and the build.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../core/errors.ts";
import { forbiddenPart, publishedPrivately, surveyTree } from "../core/files.ts";
import { type Runner, run } from "../core/process.ts";
import type { WorkTreeSnapshot } from "./model.ts";

/** Who the snapshot commits are by: the same for every user, so one state of a tree is one rev. */
const IDENTITY = ["-c", "user.name=nixos-closure", "-c", "user.email=nixos-closure@nixos-closure.invalid"];

/**
 * Where a tree with submodules keeps its last snapshot. Nix before 2.20 (its
 * git fetcher ran git) fetches a submodule-bearing rev with the repository's
 * refs, so the rev must be reachable from one.
 */
export const SNAPSHOT_REF = "refs/nixos-closure/snapshot";

/** A work tree, the field that names it and what it is for (for messages). */
export interface WorkTree {
  field: string;
  /** `override xfsprogs` */
  subject: string;
  dir: string;
}

async function git(runner: Runner, tree: WorkTree, args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  const said: string[] = [];
  const result = await run(runner, ["git", "-C", tree.dir, ...args], { env, onStderrLine: (line) => said.push(line) });
  if (result.exitCode === 127) {
    throw new InputError(
      tree.field,
      tree.dir,
      'is a git work tree, taken with git, and git is not installed here: install git, or give kind "path"',
    );
  }
  if (result.exitCode !== 0) {
    const words = said.filter((line) => line.trim() !== "").slice(-5);
    throw new InputError(
      tree.field,
      tree.dir,
      `is a git work tree git cannot take (exit ${result.exitCode ?? "signal"}):\n  ${result.printed}\n  ${words.join("\n  ")}`,
    );
  }
  return result.stdout;
}

/**
 * Takes a snapshot of a work tree owned by `uid`, the user running the step
 * (git runs the programs a repository's config names: only its owner may
 * run git there). Its tracked files are surveyed first, as a directory's
 * whole tree is: one only others may read is refused before anything is
 * written; the user's own private files are published with a warning.
 */
export async function snapshotWorkTree(
  runner: Runner,
  tree: WorkTree,
  uid: number,
): Promise<{ snapshot: WorkTreeSnapshot; warning: string | null }> {
  const files = (await git(runner, tree, ["ls-files", "-z", "--recurse-submodules"])).split("\0").filter((f) => f !== "");
  const survey = surveyTree(tree.dir, { uid, files });
  const hidden = forbiddenPart(survey, uid);
  if (hidden !== null) {
    throw new InputError(
      tree.field,
      tree.dir,
      `holds ${hidden.path}, which only its owner may read and git tracks; Nix copies a source into the store, where ` +
        "everyone can read it: make it readable (chmod o+rX) or choose another tree",
    );
  }
  let head: string[];
  try {
    head = (await git(runner, tree, ["show", "-s", "--format=%H %ct", "HEAD"])).trim().split(" ");
  } catch (error) {
    // A HEAD that names no commit yet (exit 1, quietly); any other failure says what git said.
    const verify = await run(runner, ["git", "-C", tree.dir, "rev-parse", "-q", "--verify", "HEAD"], { onStderrLine: () => {} });
    if (!(error instanceof InputError) || verify.exitCode !== 1) throw error;
    throw new InputError(
      tree.field,
      tree.dir,
      'is a git work tree with no commit yet: git takes a tree from its commits; commit once, or give kind "path"',
    );
  }
  const [headRev = "", headTime = "0"] = head;
  // The dates of HEAD, not of now: an unchanged tree gives the same rev, and the same flake.lock.
  const date = `${headTime} +0000`;
  const stashed = await git(runner, tree, [...IDENTITY, "stash", "create"], {
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_DATE: date,
  });
  // Nothing uncommitted: the tree is HEAD.
  const rev = stashed.trim() || headRev;
  const submodules = files.includes(".gitmodules") && existsSync(join(tree.dir, ".gitmodules"));
  if (submodules) {
    await git(runner, tree, ["update-ref", "-m", "nixos-closure: the last snapshot taken for Nix", SNAPSHOT_REF, rev]);
  }
  return {
    snapshot: { rev, submodules, files: survey.files, bytes: survey.bytes },
    warning: publishedPrivately(tree.subject, `the files git tracks in ${tree.dir}`, survey),
  };
}
