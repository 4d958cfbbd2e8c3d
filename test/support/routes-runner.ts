import { createInterface } from "node:readline";
import type { RouteSpec } from "../../daemon/kernel/desired.ts";
import { reconcileRoutes } from "../../daemon/kernel/routes.ts";

// The daemon's route reconcile in a test namespace (a netlink socket belongs
// to the namespace its process runs in): run under `ip netns exec NS`, it
// takes one JSON array of RouteSpec per stdin line and answers each with
// { written } or { error: { code, message, details } }, one socket throughout
// as in the daemon.

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    const written = await reconcileRoutes(JSON.parse(line) as RouteSpec[]);
    process.stdout.write(`${JSON.stringify({ written })}\n`);
  } catch (err) {
    const e = err as { code?: string; message: string; details?: string };
    process.stdout.write(`${JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } })}\n`);
  }
}
