#!/usr/bin/env node
// Entry point of `npx nixos-closure`: loads the TypeScript CLI, through tsx
// under Node (Bun runs TypeScript itself).
if (!process.versions.bun) {
  const { register } = await import("tsx/esm/api");
  register();
}
const { run } = await import("../cli/main.ts");
process.exitCode = await run(process.argv.slice(2));
