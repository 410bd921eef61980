// `nixos-closure completion SHELL`: a completion script made from the
// commands' own definitions (cli/completion.ts writes it).
import { defineCommand } from "../command_spec.ts";
import { completionScript, SHELLS, type Shell } from "../completion.ts";

export const completionCommand = defineCommand<object, [Shell]>({
  name: "completion",
  description: "print a shell completion script: bash, zsh or fish",
  arguments: [{ name: "<shell>", description: "the shell", choices: SHELLS }],
  options: [],
  help: {
    examples: [
      "nixos-closure completion bash > ~/.local/share/bash-completion/completions/nixos-closure",
      "nixos-closure completion zsh > ~/.zfunc/_nixos-closure",
      "nixos-closure completion fish > ~/.config/fish/completions/nixos-closure.fish",
    ],
    environment: [],
    exitCodes: ["  0    success", "  2    a shell it does not know"],
  },
  run: async ({ args: [shell], commands }) => {
    process.stdout.write(completionScript(commands, shell));
  },
});
