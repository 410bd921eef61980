// The nixos-closure command: what bin points at, once bundled (npm run build).
import { run } from "./main.ts";

// A reader that stops early (`nixos-closure --help | head`) is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(process.exitCode ?? 0);
  });
}

// No top-level await: the bundle is CommonJS (scripts/build-cli.mjs says why).
run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
