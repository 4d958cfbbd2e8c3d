import type { NftChain, NftDescription, NftSet } from "../policy/compile.ts";
import type { Endpoint, ServicePort } from "./model.ts";
import type { Chosen } from "./select.ts";

// The service proxy's nftables table, `inet twill-proxy`, as a description
// (the policy table's diff/apply/verify machinery takes it as it is).
//
// Per packet the cost is one lookup whatever the number of Services: the
// `services` chain looks the destination up in two verdict maps, keyed by
// (address . protocol . port) for ClusterIPs and external addresses and by
// (protocol . port) on this node's own addresses for NodePorts. The verdict
// jumps to the Service port's chain, which DNATs to an endpoint picked with
// `numgen random` (a cascade of one rule per endpoint; ClientIP affinity
// adds a chain per endpoint). Nothing per Service sits on the path of a
// packet to another Service.
//
// Only a connection's first packet runs nat chains (conntrack keeps the
// mapping), so established connections are unaffected by any change here.
//
// Masquerade follows kube-proxy's --cluster-cidr logic: traffic to a ClusterIP
// from outside the cluster CIDR and all external traffic with policy Cluster
// get the mark; postrouting masquerades marked packets, and a pod that
// reached itself through its Service (hairpin: source = destination after
// DNAT, one set lookup). A port with no endpoint at all is
// in `no-endpoint-services`/`no-endpoint-nodeports`, which filter chains ahead
// of NAT answer with a reject (ICMP port unreachable): never a black hole.

export const PROXY_TABLE = "twill-proxy";
/** The packet mark bit for "masquerade this" (kube-proxy uses the same; the two never run together). */
export const MASQ_MARK = "0x00004000";

export interface Fragment {
  chains: NftChain[];
  sets: NftSet[];
  /** `ip . ip` of this node's endpoints: a pod reaching itself through its Service is masqueraded (hairpin). */
  hairpin: string[];
  clusterIps: string[];
  nodePorts: string[];
  noEndpointServices: string[];
  noEndpointNodePorts: string[];
}

export const svcChain = (id: string) => `svc-${id}`;
const clusterChain = (id: string) => `cluster-${id}`;
const localChain = (id: string) => `local-${id}`;
export const extChain = (id: string) => `ext-${id}`;
const epName = (id: string, e: Endpoint) => `${id}__${e.ip}/${e.port}`;
export const epChain = (id: string, e: Endpoint) => `ep-${epName(id, e)}`;
const affinitySet = (id: string, e: Endpoint) => `aff-${epName(id, e)}`;

/** A duration as nft prints it (10800 → "3h", 90 → "1m30s"). */
export function nftDuration(seconds: number): string {
  const parts: [number, string][] = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
  let left = seconds;
  let out = "";
  for (const [n, unit] of parts) {
    const q = Math.floor(left / n);
    if (q) out += `${q}${unit}`;
    left -= q * n;
  }
  return out || "0s";
}

/**
 * Rules that pick one of `eps` at random; `drop` when there is none. Rule k matches with probability
 * 1/(n-k) among the connections the rules before it left (`numgen random mod n-k 0`), so each endpoint gets
 * 1/n, as iptables' `statistic` cascade did. No anonymous map: nft keeps each one as a kernel set and loads
 * them all into its cache for every transaction; measured at 10,000 Services × 3 endpoints, one anonymous
 * numgen map per chain made the full table 17.3 s and a one-element transaction 0.3–1.1 s (29 MB of nft),
 * the cascade 3.3 s and 0.07–0.19 s (14 MB), same machine, same minute. The cost: a new connection walks up
 * to n rules of its own Service's chain (only its first packet; nothing of other Services).
 * Without affinity the rules DNAT directly: no chain per endpoint. ClientIP affinity must remember which
 * endpoint a client got, so there each endpoint has a chain that records the client in its set.
 */
function dispatch(p: ServicePort, eps: Endpoint[]): string[] {
  if (eps.length === 0) return ["drop"];
  const pick = (e: Endpoint) => (p.affinitySeconds ? `goto ${epChain(p.id, e)}` : `meta l4proto ${p.protocol} dnat ip to ${e.ip}:${e.port}`);
  const rules = p.affinitySeconds ? eps.map((e) => `ip saddr @${affinitySet(p.id, e)} goto ${epChain(p.id, e)}`) : [];
  eps.forEach((e, k) => rules.push(k === eps.length - 1 ? pick(e) : `numgen random mod ${eps.length - k} 0 ${pick(e)}`));
  return rules;
}

const masqRule = "jump mark-for-masquerade";

/** One Service port's part of the table; `node` is this node's name (its endpoints can hairpin). */
export function compilePort(p: ServicePort, chosen: Chosen, clusterCIDR: string, node?: string): Fragment {
  const f: Fragment = { chains: [], sets: [], hairpin: [], clusterIps: [], nodePorts: [], noEndpointServices: [], noEndpointNodePorts: [] };
  const vips = p.clusterIPs;
  const key = (ip: string) => `${ip} . ${p.protocol} . ${p.port}`;
  const nodePortKey = `${p.protocol} . ${p.nodePort}`;
  const external = p.nodePort !== undefined || p.externalIPs.length > 0;
  if (!chosen.reachable) {
    for (const ip of [...vips, ...p.externalIPs]) f.noEndpointServices.push(`${key(ip)} : goto reject-chain`);
    if (p.nodePort !== undefined) f.noEndpointNodePorts.push(`${nodePortKey} : goto reject-chain`);
    return f;
  }
  // Traffic to the ClusterIP from outside the pod network leaves masqueraded, so replies come back through this node.
  const vipMasq = `ip daddr ${vips.length === 1 ? vips[0] : `{ ${vips.join(", ")} }`} ip saddr != ${clusterCIDR} ${masqRule}`;
  const split = p.internalLocal && chosen.usesCluster;
  f.chains.push({ name: svcChain(p.id), rules: [vipMasq, ...(p.internalLocal ? [`goto ${localChain(p.id)}`] : dispatch(p, chosen.cluster))] });
  const clusterTarget = split ? clusterChain(p.id) : svcChain(p.id);
  if (split) f.chains.push({ name: clusterChain(p.id), rules: dispatch(p, chosen.cluster) });
  if (chosen.usesLocal) f.chains.push({ name: localChain(p.id), rules: dispatch(p, chosen.local) });
  if (external) {
    const rules = p.externalLocal
      ? [
          // Pods and the node itself reach a Local Service like a ClusterIP (kube-proxy does the same): only
          // traffic from outside is held to this node's endpoints, and it keeps its source address.
          ...(chosen.usesCluster ? [`ip saddr ${clusterCIDR} goto ${clusterTarget}`, `fib saddr type local ${masqRule}`, `fib saddr type local goto ${clusterTarget}`] : []),
          `goto ${localChain(p.id)}`,
        ]
      : [masqRule, `goto ${clusterTarget}`];
    f.chains.push({ name: extChain(p.id), rules });
  }
  const eps = new Map<string, Endpoint>();
  for (const e of [...chosen.cluster, ...chosen.local]) eps.set(`${e.ip}:${e.port}`, e);
  for (const e of eps.values()) if (e.node === undefined || e.node === node) f.hairpin.push(`${e.ip} . ${e.ip}`);
  for (const e of p.affinitySeconds ? eps.values() : []) {
    f.chains.push({
      name: epChain(p.id, e),
      rules: [
        `update @${affinitySet(p.id, e)} { ip saddr }`,
        `meta l4proto ${p.protocol} dnat ip to ${e.ip}:${e.port}`,
      ],
    });
    // nft lists a dynamic set's declaration in this order; verify compares the lines.
    f.sets.push({ kind: "set", name: affinitySet(p.id, e), type: "ipv4_addr", extra: ["size 65535", "flags dynamic,timeout", `timeout ${nftDuration(p.affinitySeconds!)}`], dynamic: true, elements: [] });
  }
  for (const ip of vips) f.clusterIps.push(`${key(ip)} : goto ${svcChain(p.id)}`);
  for (const ip of p.externalIPs) f.clusterIps.push(`${key(ip)} : goto ${extChain(p.id)}`);
  if (p.nodePort !== undefined) f.nodePorts.push(`${nodePortKey} : goto ${extChain(p.id)}`);
  return f;
}

const KEY3 = "ipv4_addr . inet_proto . inet_service : verdict";
const KEY2 = "inet_proto . inet_service : verdict";

/** The fixed part of the table: hooks, dispatch, masquerade, reject. */
function baseChains(): NftChain[] {
  const check = ["ct state new jump endpoints-check"];
  return [
    { name: "nat-prerouting", hook: "type nat hook prerouting priority dstnat; policy accept;", rules: ["jump services"] },
    { name: "nat-output", hook: "type nat hook output priority -100; policy accept;", rules: ["jump services"] },
    // After DNAT: a connection whose source is its own destination is a pod that reached itself through a Service.
    { name: "nat-postrouting", hook: "type nat hook postrouting priority srcnat; policy accept;", rules: ["ip saddr . ip daddr @hairpin masquerade fully-random", "jump masquerading"] },
    // Ahead of NAT (-100), as kube-proxy's: a port without endpoints still has its Service's address here.
    { name: "filter-forward", hook: "type filter hook forward priority -110; policy accept;", rules: check },
    { name: "filter-input", hook: "type filter hook input priority -110; policy accept;", rules: check },
    { name: "filter-output", hook: "type filter hook output priority -110; policy accept;", rules: check },
    { name: "services", rules: ["ip daddr . meta l4proto . th dport vmap @cluster-ips", "ip daddr @node-ips meta l4proto . th dport vmap @node-ports"] },
    { name: "endpoints-check", rules: ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services", "ip daddr @node-ips meta l4proto . th dport vmap @no-endpoint-nodeports"] },
    { name: "mark-for-masquerade", rules: [`meta mark set meta mark | ${MASQ_MARK}`] },
    { name: "masquerading", rules: [`meta mark & ${MASQ_MARK} == 0x00000000 return`, `meta mark set meta mark ^ ${MASQ_MARK}`, "masquerade fully-random"] },
    { name: "reject-chain", rules: ["reject"] },
  ];
}

/** The whole table for these fragments and this node's addresses (NodePorts answer on them). */
export function describeProxy(fragments: Iterable<Fragment>, nodeIps: string[]): NftDescription {
  const chains = baseChains();
  const sets: NftSet[] = [];
  const hairpin = new Set<string>();
  const clusterIps: string[] = [];
  const nodePorts: string[] = [];
  const noEp: string[] = [];
  const noEpNodePorts: string[] = [];
  for (const f of fragments) {
    for (const c of f.chains) chains.push(c);
    for (const s of f.sets) sets.push(s);
    for (const e of f.hairpin) hairpin.add(e);
    for (const e of f.clusterIps) clusterIps.push(e);
    for (const e of f.nodePorts) nodePorts.push(e);
    for (const e of f.noEndpointServices) noEp.push(e);
    for (const e of f.noEndpointNodePorts) noEpNodePorts.push(e);
  }
  return {
    table: PROXY_TABLE,
    sets: [
      { kind: "map", name: "cluster-ips", type: KEY3, elements: clusterIps },
      { kind: "map", name: "node-ports", type: KEY2, elements: nodePorts },
      { kind: "map", name: "no-endpoint-services", type: KEY3, elements: noEp },
      { kind: "map", name: "no-endpoint-nodeports", type: KEY2, elements: noEpNodePorts },
      { kind: "set", name: "node-ips", type: "ipv4_addr", elements: [...nodeIps] },
      { kind: "set", name: "hairpin", type: "ipv4_addr . ipv4_addr", elements: [...hairpin] },
      ...sets,
    ],
    chains,
  };
}
