import type { V1Service } from "@kubernetes/client-node";
import { formatIp, lastAddress, parseCidr, parseIp, type Cidr } from "../../lib/net/cidr.ts";
import { serviceKey } from "./model.ts";

// LoadBalancer addresses from Twill's pools (LoadBalancerPool, twill.dev),
// pure: which address each LoadBalancer Service should have. A Service keeps
// the address it has while that address is in a pool and no older Service
// holds it; the others get the lowest free address, oldest Service first, so
// every daemon computes the same answer from the same view. Services of
// another implementation (a loadBalancerClass that is not Twill's) are left
// alone, as the API asks.

/** The class Twill answers besides "none set" (the cluster's default implementation). */
export const TWILL_LB_CLASS = "twill.dev/load-balancer";

export interface LbPool {
  name: string;
  cidrs: Cidr[];
}

export interface PoolObject {
  metadata?: { name?: string };
  spec?: { cidrs?: unknown };
}

/** A pool object parsed; an error names what is wrong (the pool is then left out). */
export function parsePool(o: PoolObject): LbPool | { name: string; error: string } {
  const name = o.metadata?.name ?? "";
  const cidrs = o.spec?.cidrs;
  if (!Array.isArray(cidrs) || cidrs.length === 0) return { name, error: "spec.cidrs must list at least one IPv4 CIDR" };
  const out: Cidr[] = [];
  for (const c of cidrs) {
    try {
      const p = parseCidr(String(c));
      if (p.family !== 4) return { name, error: `${c}: only IPv4 pools are served so far` };
      out.push(p);
    } catch {
      return { name, error: `${c} is not a CIDR` };
    }
  }
  return { name, cidrs: out };
}

export const isTwillLoadBalancer = (s: V1Service) => s.spec?.type === "LoadBalancer" && (!s.spec.loadBalancerClass || s.spec.loadBalancerClass === TWILL_LB_CLASS);

const inPools = (pools: LbPool[], ip: string) => {
  try {
    const v = parseIp(ip);
    return v.family === 4 && pools.some((p) => p.cidrs.some((c) => v.value >= c.network && v.value <= lastAddress(c)));
  } catch {
    return false;
  }
};

/** Service key → the address it should carry in status.loadBalancer.ingress (absent: the pools are full). */
export function allocate(pools: LbPool[], services: V1Service[]): Map<string, string> {
  const ours = services.filter(isTwillLoadBalancer).sort((a, b) => {
    const ta = String(a.metadata?.creationTimestamp ?? "");
    const tb = String(b.metadata?.creationTimestamp ?? "");
    return ta === tb ? serviceKey(a.metadata?.namespace ?? "", a.metadata?.name ?? "").localeCompare(serviceKey(b.metadata?.namespace ?? "", b.metadata?.name ?? "")) : ta < tb ? -1 : 1;
  });
  const taken = new Set<string>();
  const out = new Map<string, string>();
  const wanting: V1Service[] = [];
  for (const s of ours) {
    const key = serviceKey(s.metadata?.namespace ?? "", s.metadata?.name ?? "");
    const have = s.status?.loadBalancer?.ingress?.[0]?.ip;
    if (have && inPools(pools, have) && !taken.has(have)) {
      taken.add(have);
      out.set(key, have);
    } else wanting.push(s);
  }
  for (const s of wanting) {
    const key = serviceKey(s.metadata?.namespace ?? "", s.metadata?.name ?? "");
    const ip = firstFree(pools, taken);
    if (!ip) continue;
    taken.add(ip);
    out.set(key, ip);
  }
  return out;
}

function firstFree(pools: LbPool[], taken: Set<string>): string | undefined {
  for (const p of pools) {
    for (const c of p.cidrs) {
      const last = lastAddress(c);
      // A /31 or /32 is all usable; otherwise skip the network and broadcast addresses.
      const [lo, hi] = c.prefix >= 31 ? [c.network, last] : [c.network + 1n, last - 1n];
      for (let v = lo; v <= hi; v++) {
        const ip = formatIp(4, v);
        if (!taken.has(ip)) return ip;
      }
    }
  }
  return undefined;
}
