# Rendered by nixos-closure (render_config) from the flow's inputs; re-render instead of editing.
{ config, lib, pkgs, nixos-flake, inputs, ... }:
{
  imports = [
    nixos-flake.nixosModules.profiles.devel
    nixos-flake.nixosModules.profiles.build-tools
    nixos-flake.nixosModules.profiles.monitoring
    nixos-flake.nixosModules.testSuites.fstests
    nixos-flake.nixosModules.mounts.shares
  ];

  networking.hostName = "";
  nixos-flake.user.name = "kdevops";

  nixos-flake.monitoring.enable = true;

  users.users.root.openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q"
  ];
  users.users."kdevops".openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q"
  ];

  nixos-flake.shares."/var/lib/xfstests" = { tag = "fstests"; };
}
