// The nixos-flake library from anywhere, with the real nix, offline: a
// directory, a path: reference and a git+file:// reference build the same
// system.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { InputError, NixError } from "../../f/nix/lib/core/errors.ts";
import { testNixes } from "../helpers/nix.ts";
import { vmSteps } from "../helpers/steps.ts";
import { useWorkbench } from "../helpers/workbench.ts";

for (const nix of testNixes()) {
  describe(`the library as a directory or a flake reference with ${nix.version}`, () => {
    const bench = useWorkbench(nix, { NIXOS_CLOSURE_PROGRESS: "off" });
    const build = (vm: string, nixosFlake: string) =>
      vmSteps(bench()).renderLockBuild({ vm_name: vm, profiles: ["devel"], test_suites: [], nixos_flake: nixosFlake });

    test("path: and git+file:// references give the toplevel the directory gives", async () => {
      const fromDir = await build("lib-dir", "");
      const fromPath = await build("lib-path", `path:${bench().libraryDir}`);
      const repo = join(bench().root, "nixos-flake.git");
      cpSync(bench().libraryDir, repo, { recursive: true });
      const git = (...args: string[]) =>
        execFileSync("git", ["-c", "user.name=test", "-c", "user.email=test@example.org", ...args], { cwd: repo, stdio: "pipe" });
      git("init", "-q");
      git("add", "-A");
      git("commit", "-q", "-m", "library");
      const fromGit = await build("lib-git", `git+file://${repo}`);
      // The VMs differ only by name; their system paths (the library's packages) are one store path.
      const packages = (toplevel: string) => realpathSync(join(toplevel, "sw"));
      assert.equal(packages(fromPath.toplevel), packages(fromDir.toplevel));
      assert.equal(packages(fromGit.toplevel), packages(fromDir.toplevel));
      const rendered = readFileSync(join(fromGit.config_dir, "flake.nix"), "utf8");
      assert.match(rendered, /nixos-flake\.url = "path:\/nix\/store\/[a-z0-9]{32}-source";/, "the fetched source, locked");
    });

    test("a reference Nix cannot fetch, or a value that is neither, is named", async () => {
      await assert.rejects(
        build("lib-bad-ref", `git+file://${join(bench().root, "no-such-repo")}`),
        (e: Error) => e instanceof NixError && /fetching git\+file:\/\/.*no-such-repo failed/.test(e.message),
      );
      await assert.rejects(
        build("lib-bad-text", "relative/dir"),
        (e: Error) => e instanceof InputError && /neither an absolute directory nor a flake reference/.test(e.message),
      );
      await assert.rejects(
        build("lib-scheme", "file+file:///etc/shadow"),
        (e: Error) => e instanceof InputError && /uses the scheme "file\+file"/.test(e.message),
      );
      const secret = join(bench().root, "private-lib");
      cpSync(bench().libraryDir, secret, { recursive: true });
      chmodSync(secret, 0o700);
      for (const ref of [secret, `path:${secret}`, `git+file://${secret}`]) {
        await assert.rejects(
          build("lib-private", ref),
          (e: Error) => e instanceof InputError && /only its owner may read/.test(e.message),
          ref,
        );
      }
      await assert.rejects(
        build("lib-not-lib", `path:${bench().nixpkgsDir}`),
        (e: Error) => e instanceof InputError && /is not the nixos-flake library/.test(e.message),
      );
    });
  });
}
