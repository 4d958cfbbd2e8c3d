import { TwillError } from "../../lib/errors.ts";
import { formatIp, parseIp } from "../../lib/net/cidr.ts";
import type { IpamConfig } from "./config.ts";
import { candidates, describeRange, rangeSetSize, type RangeSet } from "./ranges.ts";
import { IpamStore } from "../../lib/ipam/store.ts";

export interface Lease {
  /** Address in CIDR form with its subnet's prefix, e.g. "10.244.1.5/24". */
  address: string;
  ip: string;
  gateway: string | undefined;
}

function leaseFor(set: RangeSet, ip: string): Lease {
  const { family, value } = parseIp(ip);
  const range = set.find((r) => r.subnet.family === family && value >= r.start && value <= r.end) ?? set[0]!;
  return {
    address: `${ip}/${range.subnet.prefix}`,
    ip,
    gateway: range.gateway !== undefined ? formatIp(family, range.gateway) : undefined,
  };
}

export function inRangeSet(set: RangeSet, ip: string): boolean {
  const { family, value } = parseIp(ip);
  return set.some((r) => r.subnet.family === family && value >= r.start && value <= r.end && value !== r.gateway);
}

/**
 * Gives the attachment one address from each range set. A repeated ADD for
 * the same container and interface returns what it already holds.
 */
export function allocate(cfg: IpamConfig, containerId: string, ifname: string): Lease[] {
  const store = new IpamStore(cfg.dataDir);
  const held = store.findByOwner(containerId, ifname);
  const leases: Lease[] = [];
  const claimed: string[] = [];
  try {
    for (const [i, set] of cfg.rangeSets.entries()) {
      const existing = held.find((ip) => inRangeSet(set, ip));
      if (existing) {
        leases.push(leaseFor(set, existing));
        continue;
      }
      const ip = claimFrom(store, set, i, containerId, ifname);
      claimed.push(ip);
      leases.push(leaseFor(set, ip));
    }
  } catch (err) {
    for (const ip of claimed) store.remove(ip);
    throw err;
  }
  return leases;
}

function claimFrom(store: IpamStore, set: RangeSet, setIndex: number, containerId: string, ifname: string): string {
  const family = set[0]!.subnet.family;
  const lastText = store.lastReserved(setIndex);
  let last: bigint | undefined;
  if (lastText) {
    try {
      last = parseIp(lastText).value;
    } catch {
      last = undefined;
    }
  }
  // Addresses seen taken. Parallel ADDs start from the same hint, so after
  // the first collision one readdir tells every taken address at once, instead
  // of a failed claim (five syscalls) per address.
  let taken: Set<string> | undefined;
  for (const value of candidates(set, last)) {
    const ip = formatIp(family, value);
    if (taken?.has(ip)) continue;
    if (store.claim(ip, containerId, ifname)) {
      store.setLastReserved(setIndex, ip);
      return ip;
    }
    if (!taken) {
      const names = store.names();
      taken = new Set(names);
      // Temp files of killed processes: clear them while here (they hold no address).
      if (IpamStore.hasLeftovers(names)) store.sweep({ tempOnly: true });
    }
  }
  throw new TwillError(
    "IPAM_EXHAUSTED",
    `no free address in ${set.map(describeRange).join(", ")}: all ${rangeSetSize(set)} are allocated; free addresses by deleting pods, or run CNI GC to reclaim leaked ones`,
  );
}

export function release(cfg: { dataDir: string }, containerId: string, ifname: string): string[] {
  return new IpamStore(cfg.dataDir).release(containerId, ifname);
}

/** Frees every allocation whose attachment is not in `valid` ("containerId/ifname" keys). */
export function collectGarbage(cfg: { dataDir: string }, valid: Set<string>): string[] {
  const store = new IpamStore(cfg.dataDir);
  const freed: string[] = [];
  for (const a of store.list()) {
    if (!valid.has(`${a.containerId}/${a.ifname}`)) {
      store.remove(a.ip);
      freed.push(a.ip);
    }
  }
  store.sweep({ valid });
  return freed;
}
