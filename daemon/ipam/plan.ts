import { cidrContains, parseCidr, parseIp, type Cidr } from "../../lib/net/cidr.ts";
import type { AllocationRecord } from "../../lib/ipam/store.ts";

// What an IPAM sweep may release: pure, so the daemon's periodic sweep and
// `twillctl ipam gc` decide the same way. Runtimes such as containerd 1.6
// never send CNI GC, so a sandbox that died without DEL leaves its record
// forever; this finds such records from the apiserver's view of the node.
//
// The model is Calico's IPAM GC: an address is a leak candidate when no pod
// bound to this node holds it (no pod's status.podIPs names it, no known live
// sandbox owns it), and it is released only after it has stayed a candidate,
// continuously, for a grace period. The grace period also covers the race
// with a pod being created right now: its CNI ADD writes the record before
// the kubelet reports the pod's IP, so a record younger than the grace period
// is never a candidate, whatever the apiserver says.

export interface SweepRecord extends AllocationRecord {
  /** The network's directory name (one per CNI network under the IPAM data dir). */
  network: string;
}

export interface SweepInput {
  records: SweepRecord[];
  /** status.podIPs of every pod bound to this node, in any phase (a terminated pod's address may still be in use). */
  livePodIps: ReadonlySet<string>;
  /** Sandbox (container) ids the runtime reports as running, when the caller can know them. */
  liveContainerIds?: ReadonlySet<string>;
  /** This node's pod CIDRs: a record outside them is not Twill's to judge. */
  podCidrs: string[];
  nowMs: number;
  graceMs: number;
  /** When each candidate was first seen (from the previous plan); empty on the first sweep. */
  candidateSince: ReadonlyMap<string, number>;
}

export type KeepReason = "live-pod" | "live-sandbox" | "younger-than-grace" | "candidate" | "outside-pod-cidrs";

export interface SweepPlan {
  release: SweepRecord[];
  kept: { record: SweepRecord; reason: KeepReason }[];
  /** Candidates still inside their grace period, for the next plan. */
  candidateSince: Map<string, number>;
}

/** One claim of one address: a released and re-claimed address is a new record (another owner or write time). */
export const recordKey = (r: SweepRecord): string => `${r.network}/${r.ip}/${r.ino}/${r.containerId}/${r.ifname}/${r.allocatedAtMs}`;

function inside(cidrs: Cidr[], ip: string): boolean {
  try {
    const { family, value } = parseIp(ip);
    return cidrs.some((c) => cidrContains(c, family, value));
  } catch {
    return false;
  }
}

export function planRelease(input: SweepInput): SweepPlan {
  const cidrs = input.podCidrs.map(parseCidr);
  const plan: SweepPlan = { release: [], kept: [], candidateSince: new Map() };
  for (const record of input.records) {
    const keep = (reason: KeepReason) => plan.kept.push({ record, reason });
    if (!inside(cidrs, record.ip)) keep("outside-pod-cidrs");
    else if (input.livePodIps.has(record.ip)) keep("live-pod");
    else if (input.liveContainerIds?.has(record.containerId)) keep("live-sandbox");
    else if (input.nowMs - record.allocatedAtMs < input.graceMs) keep("younger-than-grace");
    else {
      const key = recordKey(record);
      const since = input.candidateSince.get(key) ?? input.nowMs;
      if (input.nowMs - since >= input.graceMs) plan.release.push(record);
      else {
        plan.candidateSince.set(key, since);
        keep("candidate");
      }
    }
  }
  return plan;
}
