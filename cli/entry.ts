// The nixos-closure command: what bin points at, once bundled (npm run build).
import { run } from "./main.ts";

// A reader that stops early (`nixos-closure --help | head`) is not an error:
// the rest of the output goes nowhere, and the run ends as it would have
// (its locks released, its children stopped), with its own exit code.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    stream.write = (() => true) as typeof stream.write;
  });
}

// No top-level await: the bundle is CommonJS (scripts/build-cli.mjs says why).
run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
