import { createHash } from "node:crypto";
import { exec } from "../../lib/kernel/exec.ts";
import { TwillError } from "../../lib/errors.ts";

// Egress masquerade in Twill's own nftables table: pod → outside the cluster
// CIDR leaves with the node's address; pod ↔ pod (any node) is never NATed.
// The same table exempts the overlay's own UDP packets from connection
// tracking (the NAT hook turns conntrack on, and tracking every outer VXLAN
// packet as well as the inner one costs throughput for nothing).
// The table carries a hash of its content in its comment, so a reconcile that
// finds it current changes nothing, and a change replaces it in one atomic
// transaction.

export const NAT_TABLE = "twill-nat";

/** One end of the overlay on this node: its underlay source address and UDP port. */
export interface TunnelEndpoint {
  address: string;
  port: number;
}

/**
 * Only the tunnel's own packets skip conntrack, never everything on its port:
 * a UDP Service may use 8472 too, and an untracked datagram is never DNATed by
 * kube-proxy (a ClusterIP on 8472 was unreachable next to the real kube-proxy).
 *
 * In: addressed to this node's underlay address. A pod's datagram to a
 * Service has the ClusterIP as destination (also under IPVS, where ClusterIPs
 * are local on kube-ipvs0: that is why this is not `fib daddr type local`).
 * No iif match: on a multi-homed node the tunnel may arrive on any device. A
 * Service on the node's own address and this port would be a NodePort (range
 * 30000-32767 by default) or an externalIP, and either would take the
 * tunnel's port from the VXLAN socket anyway.
 *
 * Out: sent from the underlay address. A hostNetwork client's datagram to a
 * Service leaves from that address too (the raw hook runs before DNAT), so a
 * packet that carries a local process's socket stays tracked: `meta skuid`
 * matches only such a packet. Forwarded pod traffic carries none (the kernel
 * drops a received packet's socket), and neither do the outer packets the
 * VXLAN device builds around it, so the bulk of the tunnel stays exempt. The
 * outer packets around traffic a host process sends through the tunnel keep
 * that process's socket and are tracked: a cost on host traffic only.
 */
function notrackRules(tunnels: TunnelEndpoint[]): { in: string[]; out: string[] } {
  const seen = new Set<string>();
  const rules = { in: [] as string[], out: [] as string[] };
  for (const t of tunnels) {
    const key = `${t.address}:${t.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    rules.in.push(`ip daddr ${t.address} udp dport ${t.port} notrack`);
    rules.out.push(`ip saddr ${t.address} udp dport ${t.port} meta skuid >= 0 accept`, `ip saddr ${t.address} udp dport ${t.port} notrack`);
  }
  return rules;
}

export function masqueradeRuleset(clusterCIDRs: string[], tunnels: TunnelEndpoint[] = []): string {
  const set = clusterCIDRs.join(", ");
  let body = `  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr { ${set} } ip daddr != { ${set} } masquerade
  }`;
  // The table is IPv4 (`ip` family): an IPv6 underlay's tunnel stays tracked.
  const notrack = notrackRules(tunnels.filter((t) => !t.address.includes(":")));
  if (notrack.in.length > 0) {
    const lines = (rules: string[]) => rules.map((r) => `\n    ${r}`).join("");
    body += `
  chain overlay-in {
    type filter hook prerouting priority raw; policy accept;${lines(notrack.in)}
  }
  chain overlay-out {
    type filter hook output priority raw; policy accept;${lines(notrack.out)}
  }`;
  }
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 16);
  return `table ip ${NAT_TABLE} {\n  comment "twill:${hash}"\n${body}\n}\n`;
}

/** What this process last found or put in the kernel (undefined: unknown; "" : no table). */
let verified: string | undefined;

/**
 * Returns 1 when the table was (re)written or removed, 0 when it was already
 * right. `trustMemory`: when the wanted table is what this process last
 * verified, skip reading the kernel (an event-driven pass; resync passes read).
 */
export async function reconcileMasquerade(enabled: boolean, clusterCIDRs: string[], tunnels: TunnelEndpoint[] = [], trustMemory = false): Promise<number> {
  const wanted = enabled ? masqueradeRuleset(clusterCIDRs, tunnels) : "";
  if (trustMemory && verified === wanted) return 0;
  verified = undefined;
  const current = await exec(["nft", "list", "table", "ip", NAT_TABLE], { allowFailure: true });
  const exists = current.code === 0;
  if (!enabled) {
    if (exists) await exec(["nft", "delete", "table", "ip", NAT_TABLE]);
    verified = "";
    return exists ? 1 : 0;
  }
  const want = wanted;
  const hash = /comment "(twill:[0-9a-f]+)"/.exec(want)![1]!;
  if (exists && current.stdout.includes(hash)) {
    verified = want;
    return 0;
  }
  // Create-if-missing, delete, re-create: one transaction, never a moment without the rule.
  const tx = `table ip ${NAT_TABLE}\ndelete table ip ${NAT_TABLE}\n${want}`;
  const r = await exec(["nft", "-f", "-"], { input: tx, allowFailure: true });
  if (r.code !== 0) throw new TwillError("KERNEL_WRITE", "programming the masquerade table failed", r.stderr.trim());
  verified = want;
  return 1;
}
