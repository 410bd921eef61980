// The command line's flags and --input as flow input, without running anything.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { reportFailure } from "../../cli/failure.ts";
import { FLAG_OF_FIELD, type FlowFlags, flowInputFromFlags, parseOverride, parseShare } from "../../cli/input_from_flags.ts";
import { program } from "../../cli/main.ts";
import { InputError, Interrupted, NixError, SetupError, ToolError } from "../../f/nix/lib/core/errors.ts";
import { SpawnError } from "../../f/nix/lib/core/process.ts";
import { ED25519 } from "../helpers/golden_cases.ts";

describe("flags mirror the flow input", () => {
  test("--share and --override syntax", () => {
    assert.deepEqual(parseShare("/mnt/linux=linux:ro,noatime"), ["/mnt/linux", { tag: "linux", options: ["ro", "noatime"] }]);
    assert.deepEqual(parseShare("/mnt/x=x"), ["/mnt/x", { tag: "x", options: [] }]);
    assert.throws(
      () => parseShare("/mnt/x"),
      (e: Error) => e instanceof InputError && /--share: "\/mnt\/x" must look like MOUNT=TAG/.test(e.message),
    );
    assert.deepEqual(parseOverride("fio=/src/fio"), { pkg: "fio", src: "/src/fio" });
    assert.deepEqual(parseOverride("kmod=https://example.org/kmod.git#v33"), {
      pkg: "kmod",
      src: "https://example.org/kmod.git",
      ref: "v33",
    });
    assert.deepEqual(parseOverride("fio=/src/a#b"), { pkg: "fio", src: "/src/a#b" });
    // A directory's kind, in Nix's words: path:DIR whole, git+file://DIR (or git+file:DIR) as git takes it.
    assert.deepEqual(parseOverride("fio=path:/src/fio"), { pkg: "fio", src: "/src/fio", kind: "path" });
    assert.deepEqual(parseOverride("fio=git+file:///src/fio"), { pkg: "fio", src: "/src/fio", kind: "git" });
    assert.deepEqual(parseOverride("fio=git+file:/src/fio"), { pkg: "fio", src: "/src/fio", kind: "git" });
    assert.deepEqual(parseOverride("fio=path:relative"), { pkg: "fio", src: "path:relative" }, "left for validation to refuse");
    assert.throws(() => parseOverride("fio"), /PKG=SRC/);
  });

  test("--ssh-key-file given a private key: said so, its .pub named, nothing of the key quoted", () => {
    const dir = mkdtempSync(join(tmpdir(), "ssh-key-file-"));
    try {
      const secret = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB";
      const key = join(dir, "id_ed25519");
      writeFileSync(key, `-----BEGIN OPENSSH PRIVATE KEY-----\n${secret}\n-----END OPENSSH PRIVATE KEY-----\n`, { mode: 0o600 });
      writeFileSync(`${key}.pub`, `${ED25519}\n`);
      assert.throws(
        () => flowInputFromFlags({ sshKeyFile: [key] }),
        (e: Error) => {
          assert.ok(e instanceof InputError);
          assert.equal(e.message, `--ssh-key-file: ${JSON.stringify(key)} is a private key; give the .pub file (${key}.pub)`);
          return true;
        },
      );
      assert.deepEqual(flowInputFromFlags({ sshKeyFile: [`${key}.pub`] }).guest?.ssh_keys, [ED25519]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("flags fill the groups; curated overrides and others are split; 'none' is the empty list", () => {
    assert.deepEqual(
      flowInputFromFlags({
        vmName: "v",
        profile: ["none"],
        testSuite: ["ltp"],
        override: ["fio=/s", "kmod=/k"],
        updateLock: true,
        home: false,
      }),
      {
        guest: { vm_name: "v", home: false },
        closure: {
          profiles: [],
          test_suites: ["ltp"],
          overrides: [{ pkg: "fio", src: "/s" }],
          extra_overrides: [{ pkg: "kmod", src: "/k" }],
        },
        lock: { update_lock: true },
        root: {},
        nix: {},
      },
    );
    assert.deepEqual(
      flowInputFromFlags({
        builders: "ssh://b x86_64-linux",
        option: ["connect-timeout=5", "fallback=true"],
        publishTo: ["file:///c"],
        maxJobs: "4",
      }).nix,
      {
        builders: "ssh://b x86_64-linux",
        options: { "connect-timeout": "5", fallback: "true" },
        publish_to: ["file:///c"],
        max_jobs: "4",
      },
    );
  });
});

describe("FLAG_OF_FIELD says which flag sets each field", () => {
  /** A value for each field's flag, as commander hands it over. */
  const SAMPLES: Record<string, unknown> = {
    "guest.vm_name": "v",
    "guest.user_name": "u",
    "guest.ssh_keys": ["ssh-ed25519 AAAA"],
    "guest.shares": ["/mnt/x=x"],
    "guest.home": false,
    "guest.home_dir": "/home/u",
    "guest.hostname_at_boot": true,
    "closure.profiles": ["devel"],
    "closure.test_suites": ["ltp"],
    "closure.overrides": ["fio=/src/fio"],
    "closure.extra_overrides": ["kmod=/src/kmod"],
    "closure.nixos_flake": "github:linux-kdevops/nixos-flake",
    "lock.update_lock": true,
    "root.prepare": true,
    "root.dir": "/srv/root",
    "root.closures": ["/nix/store/00000000000000000000000000000000-nix-2.26"],
    "root.closure_files": ["/srv/closure.export"],
    "root.channel": "/nix/store/00000000000000000000000000000000-nixos-26.05",
    "root.nix_build": true,
    "nix.builders": "ssh://b x86_64-linux",
    "nix.substituters": ["https://cache.example.org"],
    "nix.trusted_public_keys": ["k:AAAA"],
    "nix.max_jobs": "4",
    "nix.cores": "2",
    "nix.options": ["connect-timeout=5"],
    "nix.publish_to": ["file:///c"],
    "nix.substitute_on_destination": true,
  };
  const options = new Map(program().commands.flatMap((c) => c.options.map((o) => [o.long, o] as const)));

  for (const [group, fields] of Object.entries(FLAG_OF_FIELD)) {
    for (const [field, flag] of Object.entries(fields)) {
      test(`${flag} sets ${group}.${field}`, () => {
        const option = options.get(flag);
        assert.ok(option, `no command offers ${flag}`);
        const sample = SAMPLES[`${group}.${field}`];
        assert.notEqual(sample, undefined, `no sample for ${group}.${field}`);
        const input = flowInputFromFlags({ [option.attributeName()]: sample } as FlowFlags);
        assert.notEqual(input[group]?.[field], undefined, `${flag} did not set ${group}.${field}`);
        const set = Object.entries(input).flatMap(([g, values]) => Object.keys(values ?? {}).map((f) => `${g}.${f}`));
        const siblings =
          group === "closure" && field.endsWith("overrides") ? ["closure.overrides", "closure.extra_overrides"] : [];
        assert.deepEqual(
          set.filter((f) => !siblings.includes(f)),
          siblings.length > 0 ? [] : [`${group}.${field}`],
          `${flag} sets only ${group}.${field}`,
        );
      });
    }
  }
});

describe("exit codes come with the errors", () => {
  /** The exit code reportFailure gives `error`, and what it wrote to stderr. */
  function report(error: unknown): { code: number; text: string } {
    const chunks: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => chunks.push(chunk) > 0) as typeof process.stderr.write;
    try {
      return { code: reportFailure(error, ["--color", "never"]), text: chunks.join("") };
    } finally {
      process.stderr.write = write;
    }
  }

  test("each kind ends the command with its own code; a kind the CLI has never heard of needs no change there", () => {
    class Unheard extends SetupError {}
    class Pickier extends ToolError {
      override readonly exitStatus = 3;
    }
    const cases: [unknown, number, RegExp][] = [
      [new InputError("--keep", "", "must be a whole number >= 0"), 2, /^error: bad input: --keep: "" must be/],
      [new SetupError("no flock"), 1, /^error: no flock\n$/],
      [new NixError("nix build", 1, "boom"), 1, /^error: nix failed \(exit 1\)/],
      [new SpawnError("cannot run nix"), 1, /^error: cannot run nix\n$/],
      [new Interrupted("SIGINT"), 130, /^error: interrupted by SIGINT/],
      [new Interrupted("SIGTERM"), 143, /^error: interrupted by SIGTERM/],
      [new Unheard("a kind added later"), 1, /^error: a kind added later\n$/],
      [new Pickier("its own code"), 3, /^error: its own code\n$/],
    ];
    for (const [error, code, text] of cases) {
      const got = report(error);
      assert.equal(got.code, code, String(error));
      assert.match(got.text, text);
      assert.doesNotMatch(got.text, /\n\s+at /, "no stack trace");
    }
    // Not ours: a bug, shown with its stack so it can be found.
    const bug = report(new TypeError("x is undefined"));
    assert.equal(bug.code, 1);
    assert.match(bug.text, /TypeError: x is undefined\n\s+at /);
  });
});
