// Delivery of a built closure to other stores (the nix group's publish_to):
// the VM host, a team cache.
import { formatBytes, plural } from "../core/format.ts";
import type { PathInfo } from "../nix/json.ts";
import type { Nix } from "../nix/locate.ts";
import { copyTo } from "../nix/operations.ts";

export interface Delivery {
  uri: string;
  paths: number;
  nar_size: number;
}

/** Copies the closure to each store; a failure names the URI and keeps the local build. */
export async function deliver(
  nix: Nix,
  toplevel: string,
  closure: readonly PathInfo[],
  targets: readonly string[],
  substituteOnDestination: boolean,
): Promise<Delivery[]> {
  const sizes = new Map(closure.map((i) => [i.path, i.narSize]));
  const delivered: Delivery[] = [];
  for (const uri of targets) {
    const copied = await copyTo(nix, uri, [toplevel], substituteOnDestination);
    const bytes = copied.reduce((n, p) => n + (sizes.get(p) ?? 0), 0);
    nix.runner.log.info(
      `delivered to ${uri}: ${copied.length} of ${plural(closure.length, "path")}, ${formatBytes(bytes)} (the destination had the rest)`,
    );
    delivered.push({ uri, paths: copied.length, nar_size: bytes });
  }
  return delivered;
}
