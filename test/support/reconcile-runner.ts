import { createInterface } from "node:readline";
import type { KernelState } from "../../daemon/kernel/desired.ts";
import { reconcile } from "../../daemon/kernel/reconcile.ts";

// The daemon's whole kernel reconcile (links, neighbours, FDB, routes) in a
// test namespace: run under `ip netns exec NS`, it takes one KernelState as
// JSON per stdin line and answers each with { changes, ms } or
// { error: { code, message, details } }, one socket throughout as in the daemon.

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const t0 = performance.now();
  try {
    const changes = await reconcile(JSON.parse(line) as KernelState);
    process.stdout.write(`${JSON.stringify({ changes, ms: performance.now() - t0 })}\n`);
  } catch (err) {
    const e = err as { code?: string; message: string; details?: string };
    process.stdout.write(`${JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } })}\n`);
  }
}
