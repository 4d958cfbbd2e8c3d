// SHA-256 that costs nothing at start-up in the CNI binary: under Bun the
// built-in hasher is used (loading node:crypto there adds ~6 ms to every
// plugin run, measured); under Node, node:crypto, loaded on first use.

interface BunHasher {
  update(data: string): BunHasher;
  digest(encoding: "hex"): string;
}
type BunGlobal = { CryptoHasher: new (algorithm: string) => BunHasher };

export function sha256Hex(data: string): string {
  const bun = (globalThis as { Bun?: BunGlobal }).Bun;
  if (bun) return new bun.CryptoHasher("sha256").update(data).digest("hex");
  const crypto = process.getBuiltinModule("node:crypto");
  return crypto.createHash("sha256").update(data).digest("hex");
}
