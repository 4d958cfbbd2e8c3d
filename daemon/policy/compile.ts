import type { V1NetworkPolicyPeer, V1NetworkPolicyPort, V1Pod } from "@kubernetes/client-node";
import { formatIp, lastAddress, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import { disjoint, type Box } from "./boxes.ts";
import { peerMatches, selectingPolicies, type ClusterState, type Protocol } from "./model.ts";

// NetworkPolicy compiled for one node: for every local pod that some policy
// isolates, per direction, the disjoint boxes of (peer address, protocol,
// port) it may talk to — the union of every rule of every selecting policy,
// with peers resolved to addresses and named ports to numbers. Pure: the
// model (model.ts) is its oracle in the tests.

export const PROTO_NUM: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };
const ALL_ADDR: [bigint, bigint] = [0n, 0xffff_ffffn];
const ALL_PROTO: [number, number] = [0, 255];
const ALL_PORTS: [number, number] = [0, 65535];

export interface PodRules {
  ip: string;
  /** undefined: not isolated in that direction. */
  ingress: Box[] | undefined;
  egress: Box[] | undefined;
}

const nsOf = (p: V1Pod) => p.metadata?.namespace ?? "default";
const v4 = (ip: string | undefined): ip is string => !!ip && !ip.includes(":");

function ipBlockIntervals(block: NonNullable<V1NetworkPolicyPeer["ipBlock"]>): [bigint, bigint][] {
  const c = parseCidr(block.cidr);
  if (c.family !== 4) return [];
  let ivs: [bigint, bigint][] = [[c.network, lastAddress(c)]];
  for (const x of block.except ?? []) {
    const e = parseCidr(x);
    if (e.family !== 4) continue;
    const [elo, ehi] = [e.network, lastAddress(e)];
    ivs = ivs.flatMap(([lo, hi]): [bigint, bigint][] => {
      if (ehi < lo || elo > hi) return [[lo, hi]];
      const parts: [bigint, bigint][] = [];
      if (elo > lo) parts.push([lo, elo - 1n]);
      if (ehi < hi) parts.push([ehi + 1n, hi]);
      return parts;
    });
  }
  return ivs;
}

const point = (ip: string): [bigint, bigint] => {
  const v = parseIp(ip).value;
  return [v, v];
};

/** Addresses a rule's peers select (pods resolved to their IPs). */
function peerIntervals(state: ClusterState, peers: V1NetworkPolicyPeer[] | undefined, policyNs: string): [bigint, bigint][] {
  if (!peers?.length) return [ALL_ADDR];
  const out: [bigint, bigint][] = [];
  for (const peer of peers) {
    if (peer.ipBlock) {
      out.push(...ipBlockIntervals(peer.ipBlock));
      continue;
    }
    for (const pod of state.pods) {
      const ip = pod.status?.podIP;
      if (v4(ip) && peerMatches(state, peer, policyNs, { pod })) out.push(point(ip));
    }
  }
  return out;
}

const isNamed = (e: V1NetworkPolicyPort) => e.port !== undefined && e.port !== null && !/^\d+$/.test(String(e.port));

/** Protocol/port ranges of the non-named port entries (all of them when there are none). */
function numericPorts(ports: V1NetworkPolicyPort[] | undefined): [number, number, number, number][] {
  if (!ports?.length) return [[...ALL_PROTO, ...ALL_PORTS]];
  return ports.filter((e) => !isNamed(e)).map((e) => {
    const proto = PROTO_NUM[(e.protocol ?? "TCP") as Protocol] ?? 6;
    if (e.port === undefined || e.port === null) return [proto, proto, ...ALL_PORTS];
    const start = Number(e.port);
    return [proto, proto, start, e.endPort ?? start];
  });
}

/** A named port entry resolved on one destination pod: the numbers it means there. */
function resolveNamed(e: V1NetworkPolicyPort, dst: V1Pod): number[] {
  const proto = e.protocol ?? "TCP";
  return (dst.spec?.containers ?? []).flatMap((c) => (c.ports ?? []).filter((p) => p.name === e.port && (p.protocol ?? "TCP") === proto).map((p) => p.containerPort));
}

function boxesFor(state: ClusterState, pod: V1Pod, dir: "Ingress" | "Egress"): Box[] | undefined {
  const policies = selectingPolicies(state, pod, dir);
  if (policies.length === 0) return undefined;
  const boxes: Box[] = [];
  for (const p of policies) {
    const rules = dir === "Ingress" ? (p.spec?.ingress ?? []) : (p.spec?.egress ?? []);
    for (const r of rules) {
      const peers = dir === "Ingress" ? ((r as { from?: V1NetworkPolicyPeer[] }).from ?? (r as { _from?: V1NetworkPolicyPeer[] })._from) : (r as { to?: V1NetworkPolicyPeer[] }).to;
      const addrs = peerIntervals(state, peers, nsOf(pod));
      for (const [pLo, pHi, tLo, tHi] of numericPorts(r.ports)) {
        for (const addr of addrs) boxes.push({ addr, proto: [pLo, pHi], port: [tLo, tHi] });
      }
      // Named ports mean a number on the destination pod: the pod itself for
      // ingress, each peer pod for egress.
      for (const e of (r.ports ?? []).filter(isNamed)) {
        const proto = PROTO_NUM[(e.protocol ?? "TCP") as Protocol] ?? 6;
        if (dir === "Ingress") {
          for (const n of resolveNamed(e, pod)) for (const addr of addrs) boxes.push({ addr, proto: [proto, proto], port: [n, n] });
          continue;
        }
        for (const dst of state.pods) {
          const ip = dst.status?.podIP;
          if (!v4(ip)) continue;
          const v = parseIp(ip).value;
          if (!addrs.some(([lo, hi]) => lo <= v && v <= hi)) continue;
          for (const n of resolveNamed(e, dst)) boxes.push({ addr: [v, v], proto: [proto, proto], port: [n, n] });
        }
      }
    }
  }
  return disjoint(boxes);
}

/** The rules of every local pod (IPv4) that some policy isolates. */
export function compileNode(state: ClusterState, localPods: V1Pod[]): PodRules[] {
  const out: PodRules[] = [];
  for (const pod of localPods) {
    const ip = pod.status?.podIP;
    if (!v4(ip)) continue;
    const ingress = boxesFor(state, pod, "Ingress");
    const egress = boxesFor(state, pod, "Egress");
    if (ingress || egress) out.push({ ip, ingress, egress });
  }
  return out;
}

export const TABLE = "twill-policy";

function range(lo: number, hi: number): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

function addrRange([lo, hi]: [bigint, bigint]): string {
  return lo === hi ? formatIp(4, lo) : `${formatIp(4, lo)}-${formatIp(4, hi)}`;
}

const element = (b: Box) => `${addrRange(b.addr)} . ${range(...b.proto)} . ${range(...b.port)}`;

/** The whole table as `nft -f` text. Replies of allowed connections pass (ct established). */
export function renderTable(rules: PodRules[]): string {
  const id = (ip: string) => ip.replaceAll(".", "_");
  const lines: string[] = [`table inet ${TABLE} {`];
  const map = (name: string, dir: "ingress" | "egress", prefix: string) => {
    const els = rules.filter((r) => r[dir]).map((r) => `${r.ip} : jump ${prefix}-${id(r.ip)}`);
    lines.push(`  map ${name} {`, "    type ipv4_addr : verdict");
    if (els.length) lines.push(`    elements = { ${els.join(", ")} }`);
    lines.push("  }");
  };
  map("ingress", "ingress", "in");
  map("egress", "egress", "eg");
  for (const r of rules) {
    for (const [dir, prefix, field, verdict] of [["ingress", "in", "saddr", "accept"], ["egress", "eg", "daddr", "return"]] as const) {
      const boxes = r[dir];
      if (!boxes) continue;
      const name = `${prefix}-${id(r.ip)}`;
      if (boxes.length > 0) {
        lines.push(`  set ${name} {`, "    type ipv4_addr . inet_proto . inet_service", "    flags interval", `    elements = { ${boxes.map(element).join(", ")} }`, "  }");
      }
      lines.push(`  chain ${name} {`);
      if (boxes.length > 0) lines.push(`    ip ${field} . meta l4proto . th dport @${name} ${verdict}`);
      lines.push("    drop", "  }");
    }
  }
  lines.push(
    "  chain forward {",
    "    type filter hook forward priority filter; policy accept;",
    "    ct state established,related accept",
    "    ip saddr vmap @egress",
    "    ip daddr vmap @ingress",
    "  }",
    "}",
  );
  return lines.join("\n") + "\n";
}

/** One atomic transaction that replaces the table (creating it if missing). */
export function replaceTransaction(rules: PodRules[]): string {
  return `table inet ${TABLE}\ndelete table inet ${TABLE}\n${renderTable(rules)}`;
}
