// The nixos-closure command: what bin points at, once bundled (npm run build).
import { run } from "./main.ts";

process.exitCode = await run(process.argv.slice(2));
