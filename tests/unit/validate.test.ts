// One test per rejection rule: each names the field and the value.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { composeGuest, type ValidationContext } from "../../f/nix/lib/config/guest.ts";
import type { OverrideInput, RenderInput } from "../../f/nix/lib/config/model.ts";
import { kernelParamsOf, renderDefault } from "../../f/nix/lib/config/render.ts";
import { keyLinesOfFile } from "../../f/nix/lib/config/ssh_keys.ts";
import { InputError } from "../../f/nix/lib/core/errors.ts";
import { ED25519, MANAGED } from "../helpers/golden_cases.ts";

const context: ValidationContext = { managedKey: null, defaultHome: "/home/kdevops" };
/** A user other than the one running the tests; files are given to them with chown, which needs root. */
const OTHER_UID = 4242;
const asRoot = process.getuid?.() === 0;

function rejects(input: RenderInput, field: string, value: string, reason: RegExp, ctx = context): void {
  assert.throws(
    () => composeGuest(input, ctx),
    (error: unknown) => {
      assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
      assert.equal(error.field, field);
      assert.ok(error.message.startsWith(`${field}: `), error.message);
      assert.ok(error.message.includes(value), `message ${JSON.stringify(error.message)} should show ${value}`);
      assert.match(error.message, reason);
      return true;
    },
  );
}

describe("vm_name", () => {
  test("rejects names NixOS refuses as a host name", () => {
    rejects({ vm_name: "-vm" }, "vm_name", '"-vm"', /not a valid NixOS host name/);
    rejects({ vm_name: "vm_" }, "vm_name", '"vm_"', /host name/);
    rejects({ vm_name: "a".repeat(64) }, "vm_name", "aaaa", /at most 63/);
    rejects({ vm_name: "my vm" }, "vm_name", '"my vm"', /host name/);
  });
  test("rejects names that would leave the nix/ directory", () => {
    rejects({ vm_name: "../escape" }, "vm_name", '"../escape"', /host name/);
    rejects({ vm_name: "a/b" }, "vm_name", '"a/b"', /host name/);
    rejects({ vm_name: ".." }, "vm_name", '".."', /host name/);
  });
  test("accepts the longest valid name and falls back to nixos when blank", () => {
    assert.equal(composeGuest({ vm_name: `a${"b".repeat(61)}c` }, context).vmName.length, 63);
    assert.equal(composeGuest({ vm_name: "" }, context).vmName, "nixos");
    assert.equal(composeGuest({ vm_name: null }, context).vmName, "nixos");
  });
});

describe("words git or ssh would take as options", () => {
  test("a ref or a host starting with '-' is refused", () => {
    rejects(
      { extra_overrides: [{ pkg: "fio", src: "https://example.org/fio.git", ref: "--upload-pack=touch /tmp/x" }] },
      "extra_overrides[0].ref",
      "--upload-pack",
      /is not a valid git ref name/,
    );
    for (const src of ["ssh://-oProxyCommand=touch%20x/fio", "ssh://me@-oProxyCommand=x/fio", "-oProxyCommand=x@host:fio.git"]) {
      assert.throws(
        () => composeGuest({ extra_overrides: [{ pkg: "fio", src }] }, context),
        (e: unknown) => e instanceof InputError && /option/.test(e.message) && e.field.startsWith("extra_overrides[0]"),
        src,
      );
    }
  });

  test("a public key file is checked line by line, and never quoted", () => {
    const shadow = "root:*:20228:0:99999:7:::\nsecret-user:$y$j9T$abcdefgh:20228::::::\n";
    assert.throws(
      () => keyLinesOfFile("--ssh-key-file", "/etc/shadow", shadow),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.match(e.message, /^--ssh-key-file: "\/etc\/shadow" line 1 is not an OpenSSH public key line/);
        assert.doesNotMatch(e.message, /root:\*|20228|secret-user/);
        return true;
      },
    );
    assert.deepEqual(keyLinesOfFile("--ssh-key-file", "/k.pub", `# mine\n\n${ED25519} me@host\n`), [`${ED25519} me@host`]);
  });
});

describe("hostname_at_boot", () => {
  test("takes only a boolean; with it the system has no host name and the kernel command line gives it", () => {
    rejects({ hostname_at_boot: "yes" as never }, "hostname_at_boot", '"yes"', /must be true or false/);
    rejects({ hostname_at_boot: 1 as never }, "hostname_at_boot", "1", /must be true or false/);
    const named = composeGuest({ vm_name: "a" }, context);
    const atBoot = composeGuest({ vm_name: "a", hostname_at_boot: true }, context);
    assert.equal(named.hostnameAtBoot, false);
    assert.equal(atBoot.hostnameAtBoot, true);
    assert.equal(composeGuest({ vm_name: "a", hostname_at_boot: null }, context).hostnameAtBoot, false);
    const a = renderDefault(atBoot);
    assert.equal(a, renderDefault(composeGuest({ vm_name: "other-name", hostname_at_boot: true }, context)));
    assert.match(a, /^ {2}networking\.hostName = "";$/m);
    assert.deepEqual(kernelParamsOf(a, "a"), ["systemd.hostname=a"]);
    assert.deepEqual(kernelParamsOf(renderDefault(named), "a"), []);
  });
});

describe("user_name", () => {
  test("rejects names that are not Linux account names", () => {
    rejects({ user_name: "John" }, "user_name", '"John"', /Linux account name/);
    rejects({ user_name: "1user" }, "user_name", '"1user"', /Linux account name/);
    rejects({ user_name: "a b" }, "user_name", '"a b"', /Linux account name/);
    rejects({ user_name: "x".repeat(33) }, "user_name", "xxx", /at most 32/);
    rejects({ user_name: "root" }, "user_name", '"root"', /administrator/);
  });
  test("rejects the system accounts NixOS creates itself", () => {
    for (const name of ["nobody", "nixbld", "nixbld7", "sshd", "messagebus", "systemd-network", "qemu-libvirtd"]) {
      rejects({ user_name: name }, "user_name", JSON.stringify(name), /system account NixOS creates for itself/);
    }
  });
  test("accepts dotted names", () => {
    assert.equal(composeGuest({ user_name: "john.doe" }, context).userName, "john.doe");
  });
});

describe("profiles and test_suites", () => {
  test("rejects unknown profiles, listing the allowed ones", () => {
    rejects({ profiles: ["devel", "gaming"] }, "profiles[1]", '"gaming"', /build-tools, controller, devel, monitoring/);
  });
  test("rejects unknown test suites, listing the allowed ones", () => {
    rejects(
      { test_suites: ["xfstests"] },
      "test_suites[0]",
      '"xfstests"',
      /blktests, fstests, gitr, ltp, mmtests, pynfs, selftests, sysbench/,
    );
  });
  test("null means the default, [] means none, blank rows are dropped", () => {
    assert.deepEqual(composeGuest({ profiles: null }, context).profiles, ["devel", "build-tools", "monitoring"]);
    assert.deepEqual(composeGuest({ profiles: [] }, context).profiles, []);
    assert.deepEqual(composeGuest({ profiles: ["", " ", "devel"] }, context).profiles, ["devel"]);
    assert.equal(composeGuest({ test_suites: null }, context).testSuites.length, 8);
  });
});

describe("shares", () => {
  const share = (mount: string, value: unknown) => ({ test_suites: [], shares: { [mount]: value } }) as RenderInput;
  test("rejects a relative mount point", () => {
    rejects(share("mnt/x", { tag: "x" }), 'shares["mnt/x"]', '"mnt/x"', /absolute path/);
  });
  test("rejects the backend's mount points", () => {
    rejects(share("/", { tag: "x" }), 'shares["/"]', '"/"', /belongs to the imageless backend/);
    rejects(share("/nix/store", { tag: "x" }), 'shares["/nix/store"]', '"/nix/store"', /imageless backend/);
    rejects(share("/nix/store/", { tag: "x" }), 'shares["/nix/store/"]', '"/nix/store/"', /imageless backend/);
    rejects(share("/lib/modules", { tag: "x" }), 'shares["/lib/modules"]', '"/lib/modules"', /imageless backend/);
  });
  test("rejects an empty tag and one over 36 bytes", () => {
    rejects(share("/mnt/x", { tag: "" }), 'shares["/mnt/x"].tag', '""', /must not be empty/);
    rejects(share("/mnt/x", { options: ["ro"] }), 'shares["/mnt/x"].tag', '""', /must not be empty/);
    rejects(share("/mnt/x", { tag: "t".repeat(37) }), 'shares["/mnt/x"].tag', "ttt", /36 bytes/);
    rejects(share("/mnt/x", { tag: "é".repeat(19) }), 'shares["/mnt/x"].tag', "éé", /36 bytes/);
  });
  test("rejects options that are not strings", () => {
    rejects(share("/mnt/x", { tag: "x", options: ["ro", 3] }), 'shares["/mnt/x"].options[1]', "3", /must be a string/);
    rejects(share("/mnt/x", { tag: "x", options: "ro" }), 'shares["/mnt/x"].options', '"ro"', /list of strings/);
  });
  test("drops empty form rows and adds the fstests share unless declared", () => {
    const guest = composeGuest({ test_suites: ["fstests"], shares: { "": {} } }, context);
    assert.deepEqual([...guest.shares], [["/var/lib/xfstests", { tag: "fstests", options: [] }]]);
    const own = composeGuest({ test_suites: ["fstests"], shares: { "/var/lib/xfstests": { tag: "mine" } } }, context);
    assert.deepEqual([...own.shares], [["/var/lib/xfstests", { tag: "mine", options: [] }]]);
  });
  test("home adds a share at home_dir, $HOME under /home, or /home/kdevops", () => {
    const explicit = composeGuest({ test_suites: [], home: true, home_dir: "/home/me" }, context);
    assert.equal(explicit.rootHome, "/home/me");
    assert.deepEqual([...explicit.shares], [["/home/me", { tag: "home", options: [] }]]);
    assert.equal(composeGuest({ home: true }, { ...context, defaultHome: "/home/op" }).rootHome, "/home/op");
    assert.equal(composeGuest({ home: false, home_dir: "/home/me" }, context).rootHome, null);
    rejects({ home: true, home_dir: "/nix/store" }, "home_dir", '"/nix/store"', /imageless backend/);
  });
});

describe("overrides", () => {
  test("rejects a bad package name", () => {
    rejects(
      { extra_overrides: [{ pkg: "foo bar", src: "/usr/share/common-licenses" }] },
      "extra_overrides[0].pkg",
      '"foo bar"',
      /package attribute name/,
    );
    rejects(
      { extra_overrides: [{ pkg: "if", src: "/usr/share/common-licenses" }] },
      "extra_overrides[0].pkg",
      '"if"',
      /package attribute name/,
    );
  });
  test("rejects a non-curated package in overrides", () => {
    rejects(
      { overrides: [{ pkg: "kmod", src: "/usr/share/common-licenses" }] },
      "overrides[0].pkg",
      '"kmod"',
      /curated packages \(fio, xfstests, xfsprogs, libbpf-tools\)/,
    );
  });
  test("rejects a missing src", () => {
    rejects({ overrides: [{ pkg: "fio" }] }, "overrides[0].src", '""', /is required/);
  });
  test("rejects a ref on a path source", () => {
    rejects(
      { overrides: [{ pkg: "fio", src: "/usr/share/common-licenses", ref: "main" }] },
      "overrides[0].ref",
      '"main"',
      /directory src/,
    );
  });
  test("rejects an absolute src that is not an existing directory", () => {
    rejects(
      { overrides: [{ pkg: "fio", src: "/nonexistent/fio" }] },
      "overrides[0].src",
      '"/nonexistent/fio"',
      /not an existing directory/,
    );
    rejects(
      { overrides: [{ pkg: "fio", src: "/etc/hostname" }] },
      "overrides[0].src",
      '"/etc/hostname"',
      /not an existing directory/,
    );
  });
  test("rejects a src that is neither a directory nor a git URL", () => {
    rejects({ overrides: [{ pkg: "fio", src: "src/fio" }] }, "overrides[0].src", '"src/fio"', /absolute directory or a git URL/);
  });
  test("rejects attrs that are not {identifier: string}", () => {
    const o = (attrs: unknown) => ({ overrides: [{ pkg: "fio", src: "/usr/share/common-licenses", attrs }] }) as RenderInput;
    rejects(o(["x"]), "overrides[0].attrs", '["x"]', /object of strings/);
    rejects(o({ "not an id": "x" }), "overrides[0].attrs", '"not an id"', /Nix attribute name/);
    rejects(o({ patches: ["a"] }), "overrides[0].attrs.patches", '["a"]', /must be a string/);
    rejects(o({ src: "/x" }), "overrides[0].attrs", '"src"', /set by the override itself/);
  });
  test("rejects the same package overridden twice", () => {
    rejects(
      {
        overrides: [{ pkg: "fio", src: "/usr/share/common-licenses" }],
        extra_overrides: [{ pkg: "fio", src: "/usr/share/common-licenses" }],
      },
      "overrides",
      '"fio"',
      /twice/,
    );
  });
  test("a flake-style git URL is the repository's plain URL, which a git input takes", () => {
    const guest = composeGuest(
      {
        extra_overrides: [
          { pkg: "fio", src: "git+https://example.org/fio.git", ref: "v3" },
          { pkg: "kmod", src: "git+ssh://git@example.org/kmod.git" },
        ],
      },
      context,
    );
    assert.deepEqual(
      guest.overrides.map((o) => [o.src, o.kind, o.ref]),
      [
        ["https://example.org/fio.git", "git", "v3"],
        ["ssh://git@example.org/kmod.git", "git", null],
      ],
    );
  });
  test("drops empty rows; git sources keep their ref", () => {
    const guest = composeGuest(
      { overrides: [{}, { pkg: "", src: "" }], extra_overrides: [{ pkg: "kmod", src: "git@example.org:kmod.git", ref: "v33" }] },
      context,
    );
    assert.deepEqual(guest.overrides, [
      {
        field: "extra_overrides[0]",
        pkg: "kmod",
        src: "git@example.org:kmod.git",
        kind: "git",
        workTree: false,
        ref: "v33",
        attrs: {},
        optional: false,
      },
    ]);
  });
});

describe("ssh_keys", () => {
  test("a private key is refused as one, its secret not shown", () => {
    const secret = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ";
    assert.throws(
      () => composeGuest({ ssh_keys: [`-----BEGIN OPENSSH PRIVATE KEY-----\n${secret}`] }, context),
      (e: Error) =>
        e instanceof InputError &&
        e.message === 'ssh_keys[0]: "(not shown)" is a private key; give its public key (the .pub file\'s line)',
    );
  });
  test("rejects an unknown key type", () => {
    rejects({ ssh_keys: ["ssh-foo AAAA"] }, "ssh_keys[0]", '"ssh-foo AAAA"', /unknown key type "ssh-foo"/);
  });
  test("rejects key data that is not base64", () => {
    rejects({ ssh_keys: ["ssh-ed25519 not*base64"] }, "ssh_keys[0]", "not*base64", /not base64/);
  });
  test("rejects key data for another key type", () => {
    const rsaBlob = Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from("ssh-rsa"), Buffer.alloc(8)]).toString("base64");
    rejects(
      { ssh_keys: [`ssh-ed25519 ${rsaBlob}`] },
      "ssh_keys[0]",
      rsaBlob.slice(0, 10),
      /key data is for "ssh-rsa", not "ssh-ed25519"/,
    );
  });
  test("rejects a key line that smuggles a second line", () => {
    rejects({ ssh_keys: [`${ED25519} a\n${ED25519} b`] }, "ssh_keys[0]", "ssh-ed25519", /more than one line/);
  });
  test("rejects a broken managed key, naming its file", () => {
    const ctx = { ...context, managedKey: { path: "/srv/system/ssh/id_ed25519.pub", line: "garbage" } };
    rejects({}, "managed key /srv/system/ssh/id_ed25519.pub", '"garbage"', /unknown key type/, ctx);
  });
  test("puts the managed key first and drops duplicates of the same key material", () => {
    const ctx = { ...context, managedKey: { path: "/k.pub", line: MANAGED } };
    const keys = composeGuest(
      { ssh_keys: [ED25519, `${MANAGED.split(" ").slice(0, 2).join(" ")} other-comment`, ED25519] },
      ctx,
    ).sshKeys;
    assert.deepEqual(keys, [MANAGED, ED25519]);
  });
});

describe("strict input: no field is dropped silently, booleans are booleans", () => {
  test("unknown keys of a share or an override are refused by name, with the closest known one", () => {
    rejects(
      { shares: { "/mnt/x": { tag: "x", opts: ["ro"] } } },
      'shares["/mnt/x"]',
      '"opts"',
      /not a field of a share .*did you mean "options"\?/,
    );
    rejects(
      { overrides: [{ pkg: "fio", src: "/usr/share/common-licenses", atrs: {} } as OverrideInput] },
      "overrides[0]",
      '"atrs"',
      /not a field of an override .*did you mean "attrs"\?/,
    );
  });
  test("a string is not a boolean", () => {
    rejects({ home: "false" as unknown as boolean }, "home", '"false"', /must be true or false \(a boolean, not a string\)/);
    rejects(
      { overrides: [{ pkg: "fio", src: "/usr/share/common-licenses", optional: "yes" }] },
      "overrides[0].optional",
      '"yes"',
      /boolean/,
    );
  });
  test("a misspelt profile gets the closest name", () => {
    rejects({ profiles: ["devle"] }, "profiles[0]", '"devle"', /did you mean "devel"\?/);
  });
});

describe("a source directory is copied into the world-readable store", () => {
  test("one holding a file only its owner may read is refused, naming the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "private-src-"));
    chmodSync(dir, 0o755); // mkdtemp makes it private, and the store would not be
    try {
      mkdirSync(join(dir, "sub"));
      writeFileSync(join(dir, "sub", "README"), "public\n");
      assert.equal(composeGuest({ extra_overrides: [{ pkg: "fio", src: dir }] }, context).overrides[0]?.src, dir);
      writeFileSync(join(dir, "sub", "id_ed25519"), "secret\n", { mode: 0o600 });
      rejects(
        { extra_overrides: [{ pkg: "fio", src: dir }] },
        "extra_overrides[0].src",
        dir,
        /holds .*id_ed25519, which only its owner may read/,
      );
      chmodSync(join(dir, "sub", "id_ed25519"), 0o644);
      chmodSync(join(dir, "sub"), 0o700);
      rejects(
        { extra_overrides: [{ pkg: "fio", src: dir }] },
        "extra_overrides[0].src",
        dir,
        /holds .*\/sub, which only its owner/,
      );
      // A readable tree under a private directory would leak just the same.
      chmodSync(join(dir, "sub"), 0o755);
      chmodSync(dir, 0o700);
      const inner = join(dir, "sub");
      rejects(
        { extra_overrides: [{ pkg: "fio", src: inner }] },
        "extra_overrides[0].src",
        inner,
        /holds .*private-src-\w+, which only its owner/,
      );
      for (const url of [`file://${inner}`, `git+file://${inner}`])
        rejects(
          { extra_overrides: [{ pkg: "fio", src: url }] },
          "extra_overrides[0].src",
          inner,
          /names .*private-src-\w+, which only its owner may read/,
        );
      chmodSync(dir, 0o755);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a source named through a link", () => {
  test("is checked where the link leads (the target's directories and tree) and rendered as that real path", () => {
    const dir = mkdtempSync(join(tmpdir(), "linked-src-"));
    chmodSync(dir, 0o755);
    try {
      mkdirSync(join(dir, "private", "xfsprogs"), { recursive: true });
      chmodSync(join(dir, "private"), 0o700);
      writeFileSync(join(dir, "private", "xfsprogs", "README"), "readable, under a private directory\n");
      mkdirSync(join(dir, "public", "xfsprogs"), { recursive: true });
      mkdirSync(join(dir, "links"));
      symlinkSync(join(dir, "private", "xfsprogs"), join(dir, "links", "to-private"));
      symlinkSync(join(dir, "public", "xfsprogs"), join(dir, "links", "to-public"));
      rejects(
        { overrides: [{ pkg: "xfsprogs", src: join(dir, "links", "to-private") }] },
        "overrides[0].src",
        join(dir, "links", "to-private"),
        /holds .*\/private, which only its owner may read/,
      );
      const linked = composeGuest({ overrides: [{ pkg: "xfsprogs", src: join(dir, "links", "to-public") }] }, context);
      assert.equal(linked.overrides[0]?.src, join(dir, "public", "xfsprogs"), "what Nix copies is what was checked");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a directory override: a git work tree as git takes it, any other whole", () => {
  /** A readable directory of this test's own: a git work tree when `git` says so. */
  function directory(git: boolean): string {
    const dir = mkdtempSync(join(tmpdir(), "override-kind-"));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, "main.c"), "int main(void) { return 0; }\n");
    if (git) execFileSync("git", ["init", "-q", dir]);
    return dir;
  }
  const one = (input: OverrideInput, ctx = context) => {
    const guest = composeGuest({ extra_overrides: [input] }, ctx);
    return { override: guest.overrides[0], warnings: guest.warnings };
  };

  test("a work tree is git, any other directory path; kind forces either", () => {
    const tree = directory(true);
    const plain = directory(false);
    try {
      assert.deepEqual(
        [one({ pkg: "fio", src: tree }).override?.kind, one({ pkg: "fio", src: tree }).override?.workTree],
        ["git", true],
      );
      assert.deepEqual(one({ pkg: "fio", src: tree }).warnings, []);
      assert.deepEqual([one({ pkg: "fio", src: plain }).override?.kind, one({ pkg: "fio", src: plain }).warnings], ["path", []]);
      const whole = one({ pkg: "fio", src: tree, kind: "path" });
      assert.deepEqual([whole.override?.kind, whole.override?.workTree], ["path", false]);
      assert.equal(whole.warnings.length, 1, "said once");
      assert.match(
        whole.warnings[0] ?? "",
        /^override fio: .* is a git work tree, copied whole as a plain directory \(kind "path"\): Nix copies [\d.]+ \w+ in \d+ files, untracked and ignored files and \.git included$/,
      );
      rejects(
        { extra_overrides: [{ pkg: "fio", src: plain, kind: "git" }] },
        "extra_overrides[0].src",
        plain,
        /is not a git work tree \(it has no \.git\); give kind "path"/,
      );
      rejects(
        { extra_overrides: [{ pkg: "fio", src: tree, kind: "gti" }] },
        "extra_overrides[0].kind",
        '"gti"',
        /did you mean "git"\?/,
      );
      rejects(
        { extra_overrides: [{ pkg: "fio", src: "https://example.org/fio.git", kind: "path" }] },
        "extra_overrides[0].kind",
        '"path"',
        /cannot be used with a git URL src/,
      );
      rejects(
        { extra_overrides: [{ pkg: "fio", src: tree, ref: "main" }] },
        "extra_overrides[0].ref",
        '"main"',
        /give src file:\/\/.* with it/,
      );
    } finally {
      rmSync(tree, { recursive: true, force: true });
      rmSync(plain, { recursive: true, force: true });
    }
  });

  test("a work tree of another user is copied whole, with a warning; kind git on it is refused", { skip: !asRoot }, () => {
    const tree = directory(true);
    try {
      execFileSync("chown", ["-R", `${OTHER_UID}:${OTHER_UID}`, tree]);
      const taken = one({ pkg: "fio", src: tree });
      assert.equal(taken.override?.kind, "path");
      assert.match(
        taken.warnings[0] ?? "",
        new RegExp(
          `is a git work tree of uid ${OTHER_UID}, and git .* reads only the repositories of the user running it \\(uid 0\\)\\): Nix copies`,
        ),
      );
      rejects(
        { extra_overrides: [{ pkg: "fio", src: tree, kind: "git" }] },
        "extra_overrides[0].src",
        tree,
        new RegExp(`is a git work tree of uid ${OTHER_UID}`),
      );
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });
});

describe("a private home: a user publishes their own files with a warning; root and others' private files are refused", () => {
  /** <base>/home (0700, the user's) / src (readable): a source under a private home, as Debian and Fedora make homes. */
  function home(): { base: string; home: string; src: string } {
    const base = mkdtempSync(join(tmpdir(), "private-home-"));
    chmodSync(base, 0o755);
    const homeDir = join(base, "home");
    const src = join(homeDir, "src", "xfsprogs");
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, "main.c"), "int main(void) { return 0; }\n");
    execFileSync("chown", ["-R", `${OTHER_UID}:${OTHER_UID}`, homeDir]);
    chmodSync(homeDir, 0o700);
    return { base, home: homeDir, src };
  }
  const asUser = { ...context, uid: OTHER_UID };

  test("the user's own private tree builds with one warning line", { skip: !asRoot }, () => {
    const tree = home();
    try {
      writeFileSync(join(tree.src, ".env"), "TOKEN=1\n", { mode: 0o600 });
      execFileSync("chown", [`${OTHER_UID}:${OTHER_UID}`, join(tree.src, ".env")]);
      const guest = composeGuest({ extra_overrides: [{ pkg: "fio", src: tree.src }] }, asUser);
      assert.equal(guest.overrides[0]?.kind, "path");
      assert.deepEqual(guest.warnings, [
        `override fio: the copy of ${tree.src} becomes readable by every user of this machine in /nix/store, ` +
          `though only you may read ${tree.home} (and 1 more private part)`,
      ]);
    } finally {
      rmSync(tree.base, { recursive: true, force: true });
    }
  });

  test("a source under a directory of another user is refused: they could swap it for a link before Nix copies it", {
    skip: !asRoot,
  }, () => {
    const base = mkdtempSync(join(tmpdir(), "redirect-"));
    try {
      chmodSync(base, 0o755);
      const theirs = join(base, "theirs");
      mkdirSync(join(theirs, "xfsprogs"), { recursive: true });
      execFileSync("chown", ["-R", `${OTHER_UID}:${OTHER_UID}`, theirs]);
      chmodSync(theirs, 0o755);
      rejects(
        { extra_overrides: [{ pkg: "fio", src: join(theirs, "xfsprogs") }] },
        "extra_overrides[0].src",
        "xfsprogs",
        /is in no safe place: .*theirs belongs to uid \d+, neither root nor uid 0/,
        { ...context, uid: 0 },
      );
      // A link of theirs on the way, in a directory of root's, is refused the same way.
      mkdirSync(join(base, "mine", "fio"), { recursive: true });
      symlinkSync(join(base, "mine"), join(base, "link"));
      execFileSync("chown", ["-h", `${OTHER_UID}:${OTHER_UID}`, join(base, "link")]);
      rejects(
        { extra_overrides: [{ pkg: "fio", src: join(base, "link", "fio") }] },
        "extra_overrides[0].src",
        "fio",
        /is a link of uid \d+, neither root nor uid 0/,
        { ...context, uid: 0 },
      );
      // Theirs to publish as themselves.
      const guest = composeGuest({ extra_overrides: [{ pkg: "fio", src: join(theirs, "xfsprogs") }] }, asUser);
      assert.equal(guest.overrides[0]?.kind, "path");
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  test("root is refused as before, and so is the user when someone else's file is private there", { skip: !asRoot }, () => {
    const tree = home();
    try {
      rejects(
        { extra_overrides: [{ pkg: "fio", src: tree.src }] },
        "extra_overrides[0].src",
        tree.src,
        /holds .*\/home, which only its owner may read/,
        {
          ...context,
          uid: 0,
        },
      );
      rejects(
        { extra_overrides: [{ pkg: "fio", src: tree.src }] },
        "extra_overrides[0].src",
        tree.src,
        /holds .*\/home, which only its owner may read/,
        {
          ...context,
          uid: OTHER_UID + 1,
        },
      );
      writeFileSync(join(tree.src, "theirs"), "secret\n", { mode: 0o600 }); // root's
      rejects(
        { extra_overrides: [{ pkg: "fio", src: tree.src }] },
        "extra_overrides[0].src",
        tree.src,
        /holds .*\/theirs, which only its owner may read/,
        asUser,
      );
    } finally {
      rmSync(tree.base, { recursive: true, force: true });
    }
  });
});

describe("input nested deeper than any flow input", () => {
  test("is refused before it is walked, not with a stack overflow", () => {
    let deep: unknown = "x";
    for (let i = 0; i < 5000; i++) deep = [deep];
    assert.throws(
      () => composeGuest({ shares: deep as object }, context),
      (e: unknown) => e instanceof InputError && /nests deeper than 16 levels/.test(e.message),
    );
  });
});
