import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InputError } from "../../f/nix/lib/core/errors.ts";
import { nixSettings, settingsArgs } from "../../f/nix/lib/nix/settings.ts";

function rejects(input: unknown, field: string, reason: RegExp): void {
  assert.throws(
    () => nixSettings(input),
    (e: unknown) => e instanceof InputError && e.field === field && reason.test(e.message),
  );
}

describe("the nix input group", () => {
  test("an unknown field is refused by name, with the closest known one", () => {
    rejects({ max_job: 4 }, "nix_settings", /"max_job" is not a field of the nix group .*did you mean "max_jobs"\?/);
    rejects({ colour: "x" }, "nix_settings", /"colour" is not a field of the nix group \(builders, .*\)$/);
  });

  test("typed fields become --option pairs, in a fixed order", () => {
    const settings = nixSettings(
      {
        builders: "ssh://builder x86_64-linux - 16 2 big-parallel; ssh://b2 aarch64-linux",
        substituters: ["https://cache.example.org", "", "file:///srv/cache"],
        trusted_public_keys: ["cache.example.org-1:WAeCMrhZOqzpUBpKNrSJkhDet4LNDr29+aOLz6TDY7w="],
        max_jobs: "auto",
        cores: 8,
        options: { "connect-timeout": 5, fallback: true },
        publish_to: ["ssh-ng://vmhost", "local?root=/srv/root"],
        substitute_on_destination: true,
      },
      "nix_settings",
      { inputKeys: true },
    );
    assert.deepEqual(settingsArgs(settings), [
      "--option",
      "builders",
      "ssh://builder x86_64-linux - 16 2 big-parallel; ssh://b2 aarch64-linux",
      "--option",
      "extra-substituters",
      "https://cache.example.org file:///srv/cache",
      "--option",
      "extra-trusted-public-keys",
      "cache.example.org-1:WAeCMrhZOqzpUBpKNrSJkhDet4LNDr29+aOLz6TDY7w=",
      "--option",
      "max-jobs",
      "auto",
      "--option",
      "cores",
      "8",
      "--option",
      "connect-timeout",
      "5",
      "--option",
      "fallback",
      "true",
    ]);
    assert.deepEqual(settings.publishTo, ["ssh-ng://vmhost", "local?root=/srv/root"]);
    assert.equal(settings.substituteOnDestination, true);
    assert.deepEqual(nixSettings({}), { options: [], publishTo: [], substituteOnDestination: false });
    assert.deepEqual(nixSettings(null).options, []);
    assert.deepEqual(settingsArgs(nixSettings({ max_jobs: "", cores: null })), [], "empty form fields keep Nix's settings");
    assert.deepEqual(
      settingsArgs(nixSettings({ builders: "" })),
      ["--option", "builders", ""],
      "an empty builders string turns remote builds off",
    );
  });

  test("an option that tries to inject a second flag is rejected", () => {
    rejects({ options: { fallback: "false --impure" } }, "nix_settings.options.fallback", /word starting with '-'/);
    rejects({ options: { "sandbox --impure": "false" } }, "nix_settings.options", /not a Nix setting name/);
    rejects({ options: { "--impure": "" } }, "nix_settings.options", /not a Nix setting name/);
    rejects({ builders: "ssh://b x86_64-linux --option sandbox false" }, "nix_settings.builders", /word starting with '-'/);
    rejects({ options: { "connect-timeout": "5\n--impure" } }, "nix_settings.options.connect-timeout", /control characters/);
  });

  test("settings that run or expose programs and files, or lift a protection, are refused by name", () => {
    for (const name of [
      "post-build-hook",
      "pre-build-hook",
      "build-hook",
      "diff-hook",
      "store",
      "allow-unsafe-native-code-during-evaluation",
      "plugin-files",
      "extra-sandbox-paths",
      "sandbox-paths",
      "sandbox",
      "require-sigs",
      "accept-flake-config",
      "trusted-users",
      "build-users-group",
    ]) {
      rejects(
        { options: { [name]: "x" } },
        "nix_settings.options",
        /is not a setting the flow input may set .*allowed: builders-use-substitutes, /,
      );
    }
    rejects({ options: { "conect-timeout": 5 } }, "nix_settings.options", /did you mean "connect-timeout"\?/);
    assert.deepEqual(settingsArgs(nixSettings({ options: { "connect-timeout": 5, "max-silent-time": 600 } })), [
      "--option",
      "connect-timeout",
      "5",
      "--option",
      "max-silent-time",
      "600",
    ]);
  });

  test("trusted keys from the input only when the worker's operator allows them", () => {
    rejects(
      { trusted_public_keys: ["cache.example.org-1:WAeCMrhZOqzpUBpKNrSJkhDet4LNDr29+aOLz6TDY7w="] },
      "nix_settings.trusted_public_keys",
      /shared store trust what those keys signed.*NIXOS_CLOSURE_ALLOW_INPUT_KEYS=1/,
    );
  });

  test("store URIs and builders carry no parameter that runs a program or reads a file; no @file builders", () => {
    const uri = "ssh-ng://localhost?remote-program=sh%20-c%20id";
    rejects({ publish_to: [uri] }, "nix_settings.publish_to[0]", /parameter "remote-program", which the flow input may not set/);
    rejects({ substituters: [uri] }, "nix_settings.substituters[0]", /parameter "remote-program"/);
    rejects({ builders: `${uri} x86_64-linux` }, "nix_settings.builders", /parameter "remote-program"/);
    rejects({ publish_to: ["ssh://h?ssh-key=/root/.ssh/id_ed25519"] }, "nix_settings.publish_to[0]", /"ssh-key"/);
    rejects({ builders: "@/etc/shadow" }, "nix_settings.builders", /"@file" would make Nix read that file/);
    rejects({ builders: "ssh://a x86_64-linux; @/etc/nix/machines" }, "nix_settings.builders", /@file/);
    assert.deepEqual(nixSettings({ publish_to: ["file:///c?compression=zstd"] }).publishTo, ["file:///c?compression=zstd"]);
    rejects({ publish_to: ["file:///c?secret-key=/etc/nix/team.sec"] }, "nix_settings.publish_to[0]", /"secret-key"/);
    rejects({ substituters: ["file:///evil?trusted=1"] }, "nix_settings.substituters[0]", /"trusted"/);
    // A host ssh would take as an option of its own.
    rejects({ publish_to: ["ssh://-oProxyCommand=touch%20x"] }, "nix_settings.publish_to[0]", /host starting with '-'/);
    rejects({ substituters: ["ssh-ng://me@-oProxyCommand=x"] }, "nix_settings.substituters[0]", /host starting with '-'/);
    rejects({ builders: "ssh://-oProxyCommand=x x86_64-linux" }, "nix_settings.builders", /host starting with '-'/);
    rejects(
      { builders: "ssh://root@h x86_64-linux /etc/shadow 1 1" },
      "nix_settings.builders",
      /names the SSH key "\/etc\/shadow"/,
    );
    assert.deepEqual(settingsArgs(nixSettings({ builders: "ssh://h x86_64-linux - 2 1" })), [
      "--option",
      "builders",
      "ssh://h x86_64-linux - 2 1",
    ]);
  });

  test("sizes are bounded: a huge value or list is refused before it reaches a command line", () => {
    rejects({ builders: "x".repeat(1 << 20) }, "nix_settings.builders", /is 1048576 bytes long; at most 16384/);
    rejects({ options: { fallback: "y".repeat(20_000) } }, "nix_settings.options.fallback", /at most 16384/);
    rejects({ substituters: Array(101).fill("https://c") }, "nix_settings.substituters", /101 entries; at most 100/);
    rejects({ publish_to: ["local?root=%"] }, "nix_settings.publish_to[0]", /malformed %-escape/);
  });

  test("settings with a field of their own, or set by the steps, are refused in options", () => {
    rejects(
      { options: { substituters: "https://x" } },
      "nix_settings.options",
      /cannot be set here: use nix_settings\.substituters$/,
    );
    rejects({ options: { "experimental-features": "x" } }, "nix_settings.options", /set by the steps/);
  });

  test("values are checked for what they are", () => {
    rejects({ substituters: ["cache.example.org"] }, "nix_settings.substituters[0]", /store URI/);
    rejects({ substituters: "https://x" }, "nix_settings.substituters", /must be a list/);
    rejects({ trusted_public_keys: ["nokey"] }, "nix_settings.trusted_public_keys[0]", /public key/);
    rejects({ max_jobs: -1 }, "nix_settings.max_jobs", /whole number/);
    rejects({ max_jobs: "many" }, "nix_settings.max_jobs", /or "auto"/);
    rejects({ cores: "auto" }, "nix_settings.cores", /whole number >= 0$/);
    rejects({ publish_to: ["vmhost"] }, "nix_settings.publish_to[0]", /store URI/);
    rejects({ publish_to: ["local?root=relative/dir"] }, "nix_settings.publish_to[0]", /relative root/);
    rejects({ options: { fallback: { nested: 1 } } }, "nix_settings.options.fallback", /string, number or boolean/);
    rejects({ substitute_on_destination: "yes" }, "nix_settings.substitute_on_destination", /true or false/);
    rejects([], "nix_settings", /must be an object/);
  });
});
