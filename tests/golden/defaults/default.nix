# Rendered by nixos-closure (render_config) from the flow's inputs; re-render instead of editing.
{ config, lib, pkgs, nixos-flake, inputs, ... }:
{
  imports = [
    nixos-flake.nixosModules.profiles.devel
    nixos-flake.nixosModules.profiles.build-tools
    nixos-flake.nixosModules.profiles.monitoring
    nixos-flake.nixosModules.testSuites.blktests
    nixos-flake.nixosModules.testSuites.fstests
    nixos-flake.nixosModules.testSuites.gitr
    nixos-flake.nixosModules.testSuites.ltp
    nixos-flake.nixosModules.testSuites.mmtests
    nixos-flake.nixosModules.testSuites.pynfs
    nixos-flake.nixosModules.testSuites.selftests
    nixos-flake.nixosModules.testSuites.sysbench
    nixos-flake.nixosModules.mounts.shares
  ];

  networking.hostName = "nixos";
  nixos-flake.user.name = "kdevops";

  nixos-flake.monitoring.enable = true;

  users.users.root.openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdbqnsYxuvEH6nUFrU1xbuHAtDcIrjRz5zWbjqR6VVb kdevops-managed"
  ];
  users.users."kdevops".openssh.authorizedKeys.keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdbqnsYxuvEH6nUFrU1xbuHAtDcIrjRz5zWbjqR6VVb kdevops-managed"
  ];

  nixos-flake.shares."/var/lib/xfstests" = { tag = "fstests"; };
}
