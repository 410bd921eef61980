// Reading a .drv file (Nix's ATerm format) for what it would produce.
import { readFileSync } from "node:fs";

/** The output paths a derivation declares: `Derive([("out","/nix/store/...","",""),...],...`. */
export function derivationOutputs(drvPath: string): string[] {
  const text = readFileSync(drvPath, "utf8");
  const outputs = /^Derive\(\[(.*?)\],\[/.exec(text)?.[1] ?? "";
  return [...outputs.matchAll(/\("[^"]+","(\/nix\/store\/[^"]+)"/g)].map((m) => m[1] as string);
}
