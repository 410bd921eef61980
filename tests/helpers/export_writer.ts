// Export files written byte by byte (a NAR and `nix-store --export` writer of
// the tests' own), to hand our check and Nix what no real export holds.

/** A 64-bit little-endian number. */
export const u64 = (n: number | bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

/** A string: its length, its bytes, padded to 8. */
export const str = (s: string): Buffer => {
  const bytes = Buffer.from(s);
  return Buffer.concat([u64(bytes.length), bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)]);
};

/** NAR nodes, as lists of tokens. */
export const file = (contents: string): Buffer[] => [
  str("("),
  str("type"),
  str("regular"),
  str("contents"),
  str(contents),
  str(")"),
];
export const entry = (name: string, node: Buffer[]): Buffer[] => [
  str("entry"),
  str("("),
  str("name"),
  str(name),
  str("node"),
  ...node,
  str(")"),
];
export const directory = (entries: Buffer[][]): Buffer[] => [
  str("("),
  str("type"),
  str("directory"),
  ...entries.flat(),
  str(")"),
];
export const symlink = (target: string): Buffer[] => [
  str("("),
  str("type"),
  str("symlink"),
  str("target"),
  str(target),
  str(")"),
];

/** A whole NAR of one node. */
export const nar = (node: Buffer[]): Buffer => Buffer.concat([str("nix-archive-1"), ...node]);
/** A NAR of a directory holding `names` (each a small file), in the order given. */
export const narOf = (names: string[]): Buffer => nar(directory(names.map((n) => entry(n, file(n)))));

/** A store path of a made-up hash (`c` repeated: a character of Nix's base 32, not e, o, u or t). */
export const storePath = (c: string, name: string): string => `/nix/store/${c.repeat(32)}-${name}`;

/** One path of an export: its NAR, the path, its references, its deriver. */
export const exported = (narBytes: Buffer, path: string, references: string[] = [], deriver = ""): Buffer =>
  Buffer.concat([
    u64(1),
    narBytes,
    u64(0x4558494e),
    str(path),
    u64(references.length),
    ...references.map(str),
    str(deriver),
    u64(0),
  ]);

/** A whole export file of the paths given. */
export const exportFile = (...paths: Buffer[]): Buffer => Buffer.concat([...paths, u64(0)]);
