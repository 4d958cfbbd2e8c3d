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

export function masqueradeRuleset(clusterCIDRs: string[], notrackUdpPorts: number[] = []): string {
  const set = clusterCIDRs.join(", ");
  let body = `  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr { ${set} } ip daddr != { ${set} } masquerade
  }`;
  if (notrackUdpPorts.length > 0) {
    const ports = notrackUdpPorts.join(", ");
    body += `
  chain overlay-in {
    type filter hook prerouting priority raw; policy accept;
    udp dport { ${ports} } notrack
  }
  chain overlay-out {
    type filter hook output priority raw; policy accept;
    udp dport { ${ports} } notrack
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
export async function reconcileMasquerade(enabled: boolean, clusterCIDRs: string[], notrackUdpPorts: number[] = [], trustMemory = false): Promise<number> {
  const wanted = enabled ? masqueradeRuleset(clusterCIDRs, notrackUdpPorts) : "";
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
