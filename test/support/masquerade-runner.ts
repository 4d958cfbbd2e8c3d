import { createInterface } from "node:readline";
import { reconcileMasquerade, type TunnelEndpoint } from "../../daemon/kernel/masquerade.ts";

// The daemon's masquerade reconcile in a test namespace (nft works on the
// namespace its process runs in): run under `ip netns exec NS`, it takes one
// request per stdin line and answers each with { changes } or { error }. One
// process throughout, so what reconcileMasquerade keeps in memory between
// passes is kept as in the daemon.

export interface MasqueradeRequest {
  enabled: boolean;
  clusterCIDRs: string[];
  tunnels: TunnelEndpoint[];
  /** An event-driven pass (true) or a verifying resync pass (false). */
  trustMemory: boolean;
}

export interface MasqueradeAnswer {
  changes?: number;
  error?: { code?: string; message: string; details?: string };
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const q = JSON.parse(line) as MasqueradeRequest;
  let a: MasqueradeAnswer;
  try {
    a = { changes: await reconcileMasquerade(q.enabled, q.clusterCIDRs, q.tunnels, q.trustMemory) };
  } catch (err) {
    const e = err as { code?: string; message: string; details?: string };
    a = { error: { code: e.code, message: e.message, details: e.details } };
  }
  process.stdout.write(`${JSON.stringify(a)}\n`);
}
