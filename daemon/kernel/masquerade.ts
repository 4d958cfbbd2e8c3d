import { createHash } from "node:crypto";
import { exec } from "../../lib/kernel/exec.ts";
import { TwillError } from "../../lib/errors.ts";

// Egress masquerade in Twill's own nftables table: pod → outside the cluster
// CIDR leaves with the node's address; pod ↔ pod (any node) is never NATed.
// The same table exempts the overlay's own UDP packets from connection
// tracking (the NAT hook turns conntrack on, and tracking every outer VXLAN
// packet as well as the inner one costs throughput for nothing).
// The table carries a hash of its content in its comment (a person reading
// `nft list ruleset` sees which version is in force); whether the kernel still
// holds that content is decided by comparing the kernel's whole listing.

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

interface Chain {
  name: string;
  hook: string;
  rules: string[];
}

/**
 * The table as text in the very form `nft list table` prints it (tabs, a
 * blank line between chains, a one-element set without braces), so that a
 * verifying pass can compare the kernel's listing with it as it stands, and
 * a restarted daemon finds its table right without rewriting it. nft takes
 * this text as input too.
 */
export function masqueradeRuleset(clusterCIDRs: string[], tunnels: TunnelEndpoint[] = []): string {
  // One CIDR (what the agent passes) is listed bare. nft lists several sorted: given
  // otherwise, the first pass of each start rewrites the table once (see `written`).
  const set = clusterCIDRs.length === 1 ? clusterCIDRs[0]! : `{ ${clusterCIDRs.join(", ")} }`;
  const chains: Chain[] = [{ name: "postrouting", hook: "type nat hook postrouting priority srcnat; policy accept;", rules: [`ip saddr ${set} ip daddr != ${set} masquerade`] }];
  // The table is IPv4 (`ip` family): an IPv6 underlay's tunnel stays tracked.
  const notrack = notrackRules(tunnels.filter((t) => !t.address.includes(":")));
  if (notrack.in.length > 0) {
    chains.push({ name: "overlay-in", hook: "type filter hook prerouting priority raw; policy accept;", rules: notrack.in });
    chains.push({ name: "overlay-out", hook: "type filter hook output priority raw; policy accept;", rules: notrack.out });
  }
  const body = chains.map((c) => [`\tchain ${c.name} {`, `\t\t${c.hook}`, ...c.rules.map((r) => `\t\t${r}`), "\t}"].join("\n")).join("\n\n");
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 16);
  return `table ip ${NAT_TABLE} {\n\tcomment "twill:${hash}"\n${body}\n}\n`;
}

/** What this process last found or put in the kernel (undefined: unknown; "" : no table). */
let verified: string | undefined;

/**
 * The kernel's own listing of the table right after this process wrote
 * `wanted`, for an nft that prints a table otherwise than masqueradeRuleset
 * writes it (another version): then a later listing is compared with this
 * one, so such a node rewrites its table once per start, not on every pass.
 */
let written: { wanted: string; listing: string } | undefined;

async function listTable(): Promise<string | undefined> {
  const r = await exec(["nft", "list", "table", "ip", NAT_TABLE], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

/**
 * Returns 1 when the table was (re)written or removed, 0 when it was already
 * right. `trustMemory`: when the wanted table is what this process last
 * verified, skip reading the kernel (an event-driven pass). A verifying
 * (resync) pass lists the table and compares all of it, not just the hash in
 * its comment, which survives a flushed chain or a rule deleted or added by
 * hand: listings print no handles without -a and these rules hold no
 * counters, so the same table always lists as the same text.
 */
export async function reconcileMasquerade(enabled: boolean, clusterCIDRs: string[], tunnels: TunnelEndpoint[] = [], trustMemory = false): Promise<number> {
  const wanted = enabled ? masqueradeRuleset(clusterCIDRs, tunnels) : "";
  if (trustMemory && verified === wanted) return 0;
  verified = undefined;
  const current = await listTable();
  if (!enabled) {
    if (current !== undefined) await exec(["nft", "delete", "table", "ip", NAT_TABLE]);
    verified = "";
    return current !== undefined ? 1 : 0;
  }
  if (current === wanted || (current !== undefined && written?.wanted === wanted && current === written.listing)) {
    verified = wanted;
    return 0;
  }
  // Create-if-missing, delete, re-create: one transaction, never a moment without the rule.
  const tx = `table ip ${NAT_TABLE}\ndelete table ip ${NAT_TABLE}\n${wanted}`;
  const r = await exec(["nft", "-f", "-"], { input: tx, allowFailure: true });
  if (r.code !== 0) throw new TwillError("KERNEL_WRITE", "programming the masquerade table failed", r.stderr.trim());
  const listing = await listTable();
  written = listing === undefined ? undefined : { wanted, listing };
  verified = wanted;
  return 1;
}
