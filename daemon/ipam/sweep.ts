import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { IpamStore } from "../../lib/ipam/store.ts";
import { planRelease, type SweepInput, type SweepPlan, type SweepRecord } from "./plan.ts";

// The sweep's I/O: read every network's records under the IPAM data dir, plan
// (plan.ts, pure), and release what the plan says through the store's own
// removal lock, each record only if it is still the claim that was planned on.

/** Temp files and index links older than this are leftovers of killed plugins (never younger: another pid namespace's plugin may be mid-claim). */

export function readRecords(ipamDir: string): SweepRecord[] {
  if (!existsSync(ipamDir)) return [];
  const out: SweepRecord[] = [];
  for (const network of readdirSync(ipamDir)) {
    const dir = join(ipamDir, network);
    if (!statSync(dir).isDirectory()) continue;
    for (const r of new IpamStore(dir).records()) out.push({ ...r, network });
  }
  return out;
}

export interface SweepResult {
  plan: SweepPlan;
  /** Records the plan named and that were removed (a record claimed again meanwhile is not). */
  released: SweepRecord[];
}

/** Releases what `plan` names (nothing with `dryRun`: twillctl's default), each only if it is still the planned claim. */
export function applyPlan(ipamDir: string, plan: SweepPlan, dryRun = false): SweepResult {
  const released: SweepRecord[] = [];
  if (dryRun) return { plan, released };
  const stores = new Map<string, IpamStore>();
  for (const r of plan.release) {
    const store = stores.get(r.network) ?? new IpamStore(join(ipamDir, r.network));
    stores.set(r.network, store);
    if (store.removeIf(r.ip, r)) released.push(r);
  }
  for (const store of stores.values()) store.sweep();
  return { plan, released };
}

/** One sweep: read every network's records, plan (plan.ts), release. */
export function sweepIpam(ipamDir: string, input: Omit<SweepInput, "records">, dryRun = false): SweepResult {
  return applyPlan(ipamDir, planRelease({ ...input, records: readRecords(ipamDir) }), dryRun);
}
