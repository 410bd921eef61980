# Reads back every string a rendered config dir carries, for the property
# test: default.nix applied to stand-in module arguments, and the inputs of
# flake.nix. Arguments: dir (the config dir), lib (the stand-in nixpkgs lib).
{ dir, lib }:
let
  stub = path: { __stub = path; };
  nixos-flake.nixosModules = {
    profiles = builtins.mapAttrs (n: _: stub "profiles.${n}") (builtins.listToAttrs (map (name: { inherit name; value = null; }) [ "build-tools" "controller" "devel" "monitoring" ]));
    testSuites = builtins.listToAttrs (map (name: { inherit name; value = stub "testSuites.${name}"; }) [ "blktests" "fstests" "gitr" "ltp" "mmtests" "pynfs" "selftests" "sysbench" ]);
    mounts.shares = stub "mounts.shares";
  };
  flake = import (dir + "/flake.nix");
  inputs = builtins.mapAttrs (name: _: "input:${name}") flake.inputs;
  m = import (dir + "/default.nix") { config = { }; inherit lib nixos-flake inputs; pkgs = { }; };
  users = m.users.users or { };
  unwrap = v: if builtins.isAttrs v && v ? _type then unwrap v.content else v;
  # Applies the overlay to a prev whose packages return their override attrs.
  prev = builtins.listToAttrs (map (o: { name = o; value.overrideAttrs = f: f { }; }) (builtins.attrNames overlayPkgs));
  overlays = unwrap (m.nixpkgs.overlays or (lib.mkAfter [ ]));
  overlayPkgs = if overlays == [ ] then { } else (builtins.head overlays) { } (builtins.mapAttrs (_: _: { overrideAttrs = f: f { }; }) overlayNames);
  overlayNames = builtins.listToAttrs (map (name: { name = builtins.substring 0 (builtins.stringLength name - 4) name; value = null; })
    (builtins.filter (n: builtins.match ".*-src" n != null) (builtins.attrNames flake.inputs)));
in
{
  imports = map (i: i.__stub) m.imports;
  hostName = m.networking.hostName;
  userName = m.nixos-flake.user.name;
  rootHome = if users ? root && users.root ? home then unwrap users.root.home else null;
  rootKeys = users.root.openssh.authorizedKeys.keys or [ ];
  userKeys = builtins.mapAttrs (_: u: u.openssh.authorizedKeys.keys or [ ]) (removeAttrs users [ "root" ]);
  shares = m.nixos-flake.shares or { };
  overrides = builtins.mapAttrs (_: attrs: attrs) overlayPkgs;
  srcInputs = removeAttrs flake.inputs [ "nixos-flake" "nixpkgs" ];
  libraryUrl = flake.inputs.nixos-flake.url;
}
