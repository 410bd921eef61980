# Rendered by nixos-closure (render_config) from the flow's inputs; re-render instead of editing.
{ config, lib, pkgs, nixos-flake, inputs, ... }:
{
  imports = [ ];

  networking.hostName = "nixos";
  nixos-flake.user.name = "kdevops";
}
