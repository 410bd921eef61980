// A prepared root as a store path, built by a derivation of our own: the
// host's /bin/sh and tools copy every path of the closures (Nix's own
// references graph, exportReferencesGraph) into $out/nix/store and lay out
// the root as nixos-prepare-root does (so the build needs Nix's sandbox off,
// or /bin/sh and /usr/bin in its sandbox-paths). A Nix database cannot be
// made inside a build, so the root carries the registration NixOS images carry,
// /nix-path-registration, which `nix-store --load-db` loads at first boot.
//
// Nothing of the input is ever Nix or shell code: the expression takes one
// argument, the name of a JSON file of data, checks each store path in it
// with a pattern and hands them to the builder as variables, always quoted.
// The same closures give the same derivation, hence the same root path and
// the same bytes, on every Nix version.

/** The derivation, written to a file beside the spec and built with `nix build -f`. */
export const ROOT_EXPRESSION = `# nixos-closure: a prepared root as a store path (prepare_root with nix_build).
# spec: a JSON file { toplevel, closures, channel, registration }, data only.
{ spec }:
  let
    input = builtins.fromJSON (builtins.readFile spec);
    storePath = what: path:
      if builtins.isString path && builtins.match "/nix/store/[0-9a-z]{32}-[A-Za-z0-9+._?=-]+" path != null
      then builtins.storePath path
      else throw ("nixos-closure root: " + what + " is not a store path");
    toplevel = storePath "toplevel" input.toplevel;
    closures = map (storePath "a closure") input.closures;
    channel = if input.channel == "" then "" else storePath "the channel" input.channel;
    roots = [ toplevel ] ++ closures ++ (if channel == "" then [ ] else [ channel ]);
  in
  derivation {
    name = "nixos-closure-root";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" (builtins.readFile ./build-root.sh) ];
    inherit toplevel channel;
    registration = input.registration;
    passAsFile = [ "registration" ];
    exportReferencesGraph = builtins.concatLists (builtins.genList (i: [ ("graph-" + toString i) (builtins.elemAt roots i) ]) (builtins.length roots));
  }
`;

/** The builder, read by the expression from the file beside it. */
export const ROOT_BUILDER = `set -eu
top=$(pwd)
# The closures' paths, from Nix's references graph: blocks of path, deriver, count, references.
awk 'state == 0 { print; state = 1; next }
     state == 1 { state = 2; next }
     state == 2 { left = $0; state = left > 0 ? 3 : 0; next }
     { if (--left == 0) state = 0 }' graph-* | sort -u > "$top/paths"
# The registration must list exactly those: blocks of path, hash, size, deriver, count, references.
awk 'state == 0 { print; state = 1; next }
     state < 4 { state++; next }
     state == 4 { left = $0; state = left > 0 ? 5 : 0; next }
     { if (--left == 0) state = 0 }' "$registrationPath" > "$top/registered"
if ! cmp -s "$top/paths" "$top/registered"; then
  echo "nixos-closure root: the registration does not list the paths of the closures" >&2
  exit 1
fi
mkdir -p "$out/nix/store"
while read -r path; do cp -a "$path" "$out/nix/store/"; done < "$top/paths"
cd "$out"
for dir in dev proc sys etc run home tmp/root var root bin \\
    nix/var/nix/gcroots nix/var/nix/temproots nix/var/nix/userpool nix/var/nix/db \\
    nix/var/nix/profiles/per-user/root nix/var/log/nix/drvs; do
  mkdir -p "$dir"
done
ln -s /run var/run
shell=$(readlink -f "$toplevel/sw/bin/sh")
if ! grep -qxF "$(echo "$shell" | cut -d/ -f1-4)" "$top/paths"; then
  echo "nixos-closure root: $toplevel/sw/bin/sh is not in the closure" >&2
  exit 1
fi
ln -s "$shell" bin/sh
ln -s "$toplevel" nix/var/nix/profiles/system-1-link
ln -s system-1-link nix/var/nix/profiles/system
ln -s /nix/var/nix/profiles/system run/current-system
: > etc/NIXOS
if [ -n "$channel" ]; then
  ln -s "$channel" nix/var/nix/profiles/per-user/root/channels-1-link
  ln -s channels-1-link nix/var/nix/profiles/per-user/root/channels
  mkdir root/.nix-defexpr
  ln -s /nix/var/nix/profiles/per-user/root/channels root/.nix-defexpr/channels
fi
cp "$registrationPath" nix-path-registration
`;

export interface RootSpec {
  toplevel: string;
  closures: string[];
  /** The channel's store path, or "". */
  channel: string;
  /** The paths' registrations, as `nix-store --load-db` reads them. */
  registration: string;
}

/**
 * `nix-store --dump-db` text made the same on every host: records sorted by
 * path and derivers left out (as NixOS's closure-info does), since which
 * derivation built a path is no part of the root and differs between hosts.
 * A record: path, hash, size, deriver, count of references, references.
 */
export function registrationOf(dump: string): string {
  const lines = dump.split("\n");
  const records: string[][] = [];
  for (let i = 0; i + 4 < lines.length && lines[i] !== ""; ) {
    const count = Number(lines[i + 4]);
    const record = lines.slice(i, i + 5 + count);
    record[3] = "";
    records.push(record);
    i += 5 + count;
  }
  records.sort((a, b) => ((a[0] ?? "") < (b[0] ?? "") ? -1 : 1));
  return records.map((r) => `${r.join("\n")}\n`).join("");
}
