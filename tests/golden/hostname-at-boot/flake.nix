{
  description = "Imageless NixOS guest: tmpfs root, /nix/store and /lib/modules from the host";

  inputs = {
    nixos-flake.url = "path:/srv/vendor/nixos-flake";
    nixpkgs.follows = "nixos-flake/nixpkgs";

    # Build a package from a local checkout or a git branch instead of the
    # nixpkgs release, for example:
    #
    # fio-src = {
    #   type = "path";
    #   path = "/home/user/src/fio";
    #   flake = false;
    # };
    #
    # kmod-src = {
    #   type = "git";
    #   url = "https://git.kernel.org/pub/scm/utils/kernel/kmod/kmod.git";
    #   submodules = true;
    #   flake = false;
    # };
  };

  outputs = { self, nixpkgs, nixos-flake, ... }@inputs:
    let
      system = "x86_64-linux";
    in
    {
      nixosConfigurations.vm = nixpkgs.lib.nixosSystem {
        inherit system;
        specialArgs = { inherit inputs nixos-flake; };
        modules = [
          nixos-flake.nixosModules.backends.imageless
          nixos-flake.nixosModules.user
          { nixpkgs.overlays = [ nixos-flake.overlays.default ]; }
          ./default.nix
        ];
      };

      packages.${system}.toplevel = self.nixosConfigurations.vm.config.system.build.toplevel;
    };
}
