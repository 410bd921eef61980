# Rendered by nixos-closure (render_config) from the flow's inputs; re-render instead of editing.
{ config, lib, pkgs, nixos-flake, inputs, ... }:
{
  imports = [
    nixos-flake.nixosModules.profiles.devel
    nixos-flake.nixosModules.profiles.controller
    nixos-flake.nixosModules.profiles.monitoring
    nixos-flake.nixosModules.testSuites.fstests
    nixos-flake.nixosModules.testSuites.selftests
    nixos-flake.nixosModules.mounts.shares
  ];

  networking.hostName = "xfs-crc_01";
  nixos-flake.user.name = "john.doe";
  users.users.root.home = lib.mkForce "/home/john.doe";

  nixos-flake.controller.enable = true;
  nixos-flake.monitoring.enable = true;

  users.users.root.openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdbqnsYxuvEH6nUFrU1xbuHAtDcIrjRz5zWbjqR6VVb kdevops-managed"
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q dev@laptop"
  ];
  users.users."john.doe".openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdbqnsYxuvEH6nUFrU1xbuHAtDcIrjRz5zWbjqR6VVb kdevops-managed"
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q dev@laptop"
  ];

  nixos-flake.shares."/mnt/linux" = { tag = "linux"; options = [ "ro" ]; };
  nixos-flake.shares."/var/lib/xfstests" = { tag = "xfstests-results"; };
  nixos-flake.shares."/home/john.doe" = { tag = "home"; };

  nixpkgs.overlays = lib.mkAfter [
    (final: prev: {
      fio = prev.fio.overrideAttrs (_: {
        src = inputs.fio-src;
        autoreconfPhase = "make configure";
        preBuild = "echo \"\${x}\"";
      });
      kmod = prev.kmod.overrideAttrs (_: {
        src = inputs.kmod-src;
      });
    })
  ];
}
