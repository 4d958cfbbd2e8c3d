import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort, V1Pod } from "@kubernetes/client-node";
import { formatIp, lastAddress, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import { HOST_VETH_PREFIX } from "../../lib/kernel/protocols.ts";
import { disjoint, type Box } from "./boxes.ts";
import { validBlock, peerMatches, selectingPolicies, type ClusterState, type Protocol } from "./model.ts";

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
  /**
   * The pod's IPv6 addresses (dual-stack). Rules are compiled for IPv4; an
   * isolated direction is closed for IPv6 (replies to the pod's own
   * connections still pass), so dual-stack never opens a hole.
   */
  ip6?: string[];
}

const nsOf = (p: V1Pod) => p.metadata?.namespace ?? "default";
const v4 = (ip: string | undefined): ip is string => !!ip && !ip.includes(":");

function ipBlockIntervals(block: NonNullable<V1NetworkPolicyPeer["ipBlock"]>): [bigint, bigint][] {
  // An unparsable block selects nothing (lint.ts reports it), as in the model.
  if (!validBlock(block)) return [];
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

/**
 * What compiling one pod needs from the rest of the cluster. The plain
 * resolver scans the whole state (the reference); the daemon's incremental
 * compiler (incremental.ts) answers from a selector index.
 */
export interface PeerResolver {
  /** The policies that select `pod` and isolate it in `dir`. */
  selecting(pod: V1Pod, dir: "Ingress" | "Egress"): V1NetworkPolicy[];
  /** Address intervals one rule's peer list selects (every address when the list is empty). */
  intervals(peers: V1NetworkPolicyPeer[] | undefined, policyNs: string): [bigint, bigint][];
  /** Pods (with an IPv4 address) the peer list selects: where an egress rule's named ports resolve. */
  pods(peers: V1NetworkPolicyPeer[] | undefined, policyNs: string): Iterable<V1Pod>;
}

/** Address intervals of an ipBlock peer (IPv4), `except` cut out. */
export function peerBlockIntervals(peer: V1NetworkPolicyPeer): [bigint, bigint][] {
  return peer.ipBlock ? ipBlockIntervals(peer.ipBlock) : [];
}

export const EVERY_ADDRESS = ALL_ADDR;

/** The reference resolver: every question answered by scanning the whole state. */
export function scanResolver(state: ClusterState): PeerResolver {
  const intervals = (peers: V1NetworkPolicyPeer[] | undefined, policyNs: string): [bigint, bigint][] => {
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
  };
  return {
    selecting: (pod, dir) => selectingPolicies(state, pod, dir),
    intervals,
    pods: (peers, policyNs) => podsWithin(state.pods, intervals(peers, policyNs)),
  };
}

/** Pods whose IPv4 address lies in one of `addrs`. */
export function podsWithin(pods: Iterable<V1Pod>, addrs: [bigint, bigint][]): V1Pod[] {
  const out: V1Pod[] = [];
  for (const dst of pods) {
    const ip = dst.status?.podIP;
    if (!v4(ip)) continue;
    const v = parseIp(ip).value;
    if (addrs.some(([lo, hi]) => lo <= v && v <= hi)) out.push(dst);
  }
  return out;
}

const knownProtocol = (e: V1NetworkPolicyPort) => Object.hasOwn(PROTO_NUM, e.protocol ?? "TCP");
const isNamed = (e: V1NetworkPolicyPort) => e.port !== undefined && e.port !== null && !/^\d+$/.test(String(e.port));

/** Protocol/port ranges of the non-named port entries (all of them when there are none). */
function numericPorts(ports: V1NetworkPolicyPort[] | undefined): [number, number, number, number][] {
  if (!ports?.length) return [[...ALL_PROTO, ...ALL_PORTS]];
  // Entries that can match nothing (unknown protocol, endPort below port) are left out, as in the model.
  return ports.filter((e) => !isNamed(e) && knownProtocol(e) && !(e.endPort !== undefined && Number(e.endPort) < Number(e.port))).map((e) => {
    const proto = PROTO_NUM[(e.protocol ?? "TCP") as Protocol]!;
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

/** A rule's peers: `to` for egress; `from` on the wire, `_from` after the typed client's deserialisation, for ingress. */
export function rulePeers(r: object, dir: "Ingress" | "Egress"): V1NetworkPolicyPeer[] | undefined {
  if (dir === "Egress") return (r as { to?: V1NetworkPolicyPeer[] }).to;
  return (r as { from?: V1NetworkPolicyPeer[] }).from ?? (r as { _from?: V1NetworkPolicyPeer[] })._from;
}

function boxesFor(res: PeerResolver, pod: V1Pod, dir: "Ingress" | "Egress"): Box[] | undefined {
  const policies = res.selecting(pod, dir);
  if (policies.length === 0) return undefined;
  const boxes: Box[] = [];
  for (const p of policies) {
    const rules = dir === "Ingress" ? (p.spec?.ingress ?? []) : (p.spec?.egress ?? []);
    for (const r of rules) {
      const peers = rulePeers(r, dir);
      const addrs = res.intervals(peers, nsOf(pod));
      for (const [pLo, pHi, tLo, tHi] of numericPorts(r.ports)) {
        for (const addr of addrs) boxes.push({ addr, proto: [pLo, pHi], port: [tLo, tHi] });
      }
      // Named ports mean a number on the destination pod: the pod itself for
      // ingress, each peer pod for egress.
      for (const e of (r.ports ?? []).filter((x) => isNamed(x) && knownProtocol(x))) {
        const proto = PROTO_NUM[(e.protocol ?? "TCP") as Protocol]!;
        if (dir === "Ingress") {
          for (const n of resolveNamed(e, pod)) for (const addr of addrs) boxes.push({ addr, proto: [proto, proto], port: [n, n] });
          continue;
        }
        for (const dst of res.pods(peers, nsOf(pod))) {
          const v = parseIp(dst.status!.podIP!).value;
          for (const n of resolveNamed(e, dst)) boxes.push({ addr: [v, v], proto: [proto, proto], port: [n, n] });
        }
      }
    }
  }
  return disjoint(boxes);
}

/** The rules of one local pod, or undefined when no policy isolates it (or it has no IPv4 address yet). */
export function compilePod(res: PeerResolver, pod: V1Pod): PodRules | undefined {
  const ip = pod.status?.podIP;
  if (!v4(ip)) return undefined;
  const ingress = boxesFor(res, pod, "Ingress");
  const egress = boxesFor(res, pod, "Egress");
  if (!ingress && !egress) return undefined;
  const ip6 = (pod.status?.podIPs ?? []).map((x) => x.ip).filter((x) => x.includes(":"));
  return ip6.length ? { ip, ingress, egress, ip6 } : { ip, ingress, egress };
}

/** The rules of every local pod (IPv4) that some policy isolates. */
export function compileNode(state: ClusterState, localPods: V1Pod[]): PodRules[] {
  const res = scanResolver(state);
  return localPods.flatMap((pod) => compilePod(res, pod) ?? []);
}

export const TABLE = "twill-policy";

/** A named set or verdict map of the table; a map's elements are `key : verdict`. */
export interface NftSet {
  kind: "set" | "map";
  name: string;
  type: string;
  flags?: string;
  /** More declaration lines, as nft lists them after the flags (`timeout 3h`): the service proxy's affinity sets. */
  extra?: string[];
  /** Elements are the datapath's (`update @set`), not Twill's: none are written, none are compared. */
  dynamic?: boolean;
  elements: string[];
}

/** A chain; `hook` makes it a base chain (`type filter hook … priority …; policy …;`). */
export interface NftChain {
  name: string;
  hook?: string;
  rules: string[];
}

/** Twill's whole policy table for one node, as data: rendered whole, or diffed against the programmed one. */
export interface NftDescription {
  table: string;
  sets: NftSet[];
  chains: NftChain[];
}

export interface DescribeOptions {
  /**
   * Fail closed: traffic from or to an address of this node's pod CIDR that is
   * not a programmed pod (`ready`) is dropped, so a pod the CNI plugin has just
   * attached talks to nobody until its policy is in the kernel.
   */
  failClosed?: { podCidr: string; ready: string[]; podCidr6?: string; ready6?: string[] };
}

function range(lo: number, hi: number): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

function addrRange([lo, hi]: [bigint, bigint]): string {
  return lo === hi ? formatIp(4, lo) : `${formatIp(4, lo)}-${formatIp(4, hi)}`;
}

// join() makes one flat string; a template literal would keep a rope of its
// parts alive, and a node holds ~10^5 of these (measured at 182,000 elements: 33 → 10 MB).
const element = (b: Box) => [addrRange(b.addr), range(...b.proto), range(...b.port)].join(" . ");
const podId = (ip: string) => ip.replaceAll(".", "_");

/**
 * One isolated pod as the table needs it: its sets and chains rendered, the
 * boxes they came from dropped (at 182,000 elements the boxes held ~22 MB of a
 * daemon heap capped at 128 MB, and the collector's work near the cap was the
 * policy-flip latency tail). The incremental compiler keeps one per pod and
 * hands back the same object while the pod's inputs do not change, so the diff
 * recognises its element lists as unchanged by identity.
 */
export interface RenderedPod {
  ip: string;
  ip6?: string[];
  /** Isolated in that direction. */
  ingress: boolean;
  egress: boolean;
  sets: NftSet[];
  chains: NftChain[];
}

export function renderPod(r: PodRules): RenderedPod {
  const out: RenderedPod = { ip: r.ip, ingress: !!r.ingress, egress: !!r.egress, sets: [], chains: [] };
  if (r.ip6) out.ip6 = r.ip6;
  for (const [dir, prefix, field, verdict] of [["ingress", "in", "saddr", "accept"], ["egress", "eg", "daddr", "return"]] as const) {
    const boxes = r[dir];
    if (!boxes) continue;
    const name = `${prefix}-${podId(r.ip)}`;
    const chainRules: string[] = [];
    if (boxes.length > 0) {
      out.sets.push({ kind: "set", name, type: "ipv4_addr . inet_proto . inet_service", flags: "interval", elements: boxes.map(element) });
      chainRules.push(`ip ${field} . meta l4proto . th dport @${name} ${verdict}`);
    }
    chainRules.push("drop");
    out.chains.push({ name, rules: chainRules });
  }
  return out;
}

const rendered = (r: PodRules | RenderedPod): RenderedPod => ("sets" in r ? r : renderPod(r));

/**
 * The table for one node. Per packet: conntrack, (fail closed,) one lookup in
 * each dispatch map by pod address, and in the pod's chain one lookup in its
 * interval set of allowed (peer . protocol . port): the rule count a packet
 * meets does not grow with the number of policies.
 */
export function describeNode(pods: (PodRules | RenderedPod)[], opts: DescribeOptions = {}): NftDescription {
  const rules = pods.map(rendered);
  const sets: NftSet[] = [];
  const chains: NftChain[] = [];
  const dispatch = (name: string, dir: "ingress" | "egress", prefix: string): NftSet => ({
    kind: "map",
    name,
    type: "ipv4_addr : verdict",
    elements: rules.filter((r) => r[dir]).map((r) => `${r.ip} : jump ${prefix}-${podId(r.ip)}`),
  });
  sets.push(dispatch("ingress", "ingress", "in"), dispatch("egress", "egress", "eg"));
  for (const r of rules) {
    sets.push(...r.sets);
    chains.push(...r.chains);
  }
  // Anti-spoofing first: a packet arriving from a pod's veth must carry a
  // source address routed back through that same veth (strict reverse-path
  // check by nft's fib, whatever the rp_filter sysctls say). Dispatch below
  // is by address, so without this a pod could borrow another's identity.
  const forward = [`meta nfproto ipv4 iifname "${HOST_VETH_PREFIX}*" fib saddr . iif oif missing drop`, "ct state established,related accept"];
  if (opts.failClosed) {
    const { podCidr, ready } = opts.failClosed;
    sets.push({ kind: "set", name: "ready", type: "ipv4_addr", elements: [...ready] });
    forward.push(`ip saddr ${podCidr} ip saddr != @ready drop`, `ip daddr ${podCidr} ip daddr != @ready drop`);
    const { podCidr6, ready6 } = opts.failClosed;
    if (podCidr6) {
      sets.push({ kind: "set", name: "ready6", type: "ipv6_addr", elements: [...(ready6 ?? [])] });
      forward.push(`ip6 saddr ${podCidr6} ip6 saddr != @ready6 drop`, `ip6 daddr ${podCidr6} ip6 daddr != @ready6 drop`);
    }
  }
  // IPv6 of isolated pods: closed in the isolated direction (rules are IPv4 only so far).
  sets.push(
    { kind: "set", name: "closed6-in", type: "ipv6_addr", elements: rules.filter((r) => r.ingress).flatMap((r) => r.ip6 ?? []) },
    { kind: "set", name: "closed6-out", type: "ipv6_addr", elements: rules.filter((r) => r.egress).flatMap((r) => r.ip6 ?? []) },
  );
  forward.push("ip6 daddr @closed6-in drop", "ip6 saddr @closed6-out drop");
  forward.push("ip saddr vmap @egress", "ip daddr vmap @ingress");
  chains.push({ name: "forward", hook: "type filter hook forward priority filter; policy accept;", rules: forward });
  return { table: TABLE, sets, chains };
}

const setBody = (s: NftSet) => `{ type ${s.type};${s.flags ? ` flags ${s.flags};` : ""}${(s.extra ?? []).map((l) => ` ${l};`).join("")} }`;

/** The whole table as `nft -f` text (the table block only). */
export function renderDescription(d: NftDescription): string {
  const lines: string[] = [`table inet ${d.table} {`];
  for (const s of d.sets) {
    lines.push(`  ${s.kind} ${s.name} {`, `    type ${s.type}`);
    if (s.flags) lines.push(`    flags ${s.flags}`);
    for (const l of s.extra ?? []) lines.push(`    ${l}`);
    if (s.elements.length) lines.push(`    elements = { ${s.elements.join(", ")} }`);
    lines.push("  }");
  }
  for (const c of d.chains) {
    lines.push(`  chain ${c.name} {`);
    if (c.hook) lines.push(`    ${c.hook}`);
    for (const r of c.rules) lines.push(`    ${r}`);
    lines.push("  }");
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}

/** One atomic transaction that replaces the table whole (creating it if missing): start-up and restarts. */
export function replaceDescription(d: NftDescription): string {
  return `table inet ${d.table}\ndelete table inet ${d.table}\n${renderDescription(d)}`;
}

const elementKey = (s: NftSet, e: string) => (s.kind === "map" ? e.slice(0, e.indexOf(" : ")) : e);

/**
 * The smallest transaction turning the programmed table `old` into `next`:
 * element adds/deletes, flush+refill of changed chains only, new and removed
 * sets/chains. Ordered so every reference is valid at each step (chains exist
 * before map elements jump to them; map elements and rules go before the
 * chains and sets they name are deleted). Empty string: nothing to do.
 * Without `old` (nothing known to be programmed) it is a whole replace.
 */
export function diffTransaction(old: NftDescription | undefined, next: NftDescription): string {
  if (!old || old.table !== next.table) return replaceDescription(next);
  const t = `inet ${next.table}`;
  const out: string[] = [];
  const oldSets = new Map(old.sets.map((s) => [s.name, s]));
  const newSets = new Map(next.sets.map((s) => [s.name, s]));
  const oldChains = new Map(old.chains.map((c) => [c.name, c]));
  const newChains = new Map(next.chains.map((c) => [c.name, c]));
  const recreated = (s: NftSet) => {
    const o = oldSets.get(s.name);
    return !!o && (o.kind !== s.kind || o.type !== s.type || o.flags !== s.flags || (o.extra ?? []).join(";") !== (s.extra ?? []).join(";"));
  };
  const recreatedChain = (c: NftChain) => {
    const o = oldChains.get(c.name);
    return !!o && o.hook !== c.hook;
  };
  // 1. Declare new sets/maps and chains (empty).
  for (const s of next.sets) if (!oldSets.has(s.name)) out.push(`add ${s.kind} ${t} ${s.name} ${setBody(s)}`);
  for (const c of next.chains) if (!oldChains.has(c.name)) out.push(`add chain ${t} ${c.name}${c.hook ? ` { ${c.hook} }` : ""}`);
  // 2. Drop rules of changed or removed chains, and elements that go or change.
  for (const c of old.chains) {
    const n = newChains.get(c.name);
    if (!n || recreatedChain(n) || (n.rules !== c.rules && n.rules.join("\n") !== c.rules.join("\n"))) out.push(`flush chain ${t} ${c.name}`);
  }
  for (const s of old.sets) {
    const n = newSets.get(s.name);
    if (!n || recreated(n)) continue; // deleted whole below
    if (n.elements === s.elements) continue;
    const keep = new Set(n.elements);
    const gone = s.elements.filter((e) => !keep.has(e));
    if (gone.length) out.push(`delete element ${t} ${s.name} { ${gone.join(", ")} }`);
  }
  // 3. Sets and chains that changed kind: delete now (nothing refers to them any more), declare again.
  for (const s of next.sets) {
    if (!recreated(s)) continue;
    out.push(`delete ${oldSets.get(s.name)!.kind} ${t} ${s.name}`, `add ${s.kind} ${t} ${s.name} ${setBody(s)}`);
  }
  for (const c of next.chains) {
    if (!recreatedChain(c)) continue;
    out.push(`delete chain ${t} ${c.name}`, `add chain ${t} ${c.name}${c.hook ? ` { ${c.hook} }` : ""}`);
  }
  // 4. New elements.
  for (const s of next.sets) {
    const o = oldSets.get(s.name);
    if (o && !recreated(s) && o.elements === s.elements) continue;
    const have = new Set(o && !recreated(s) ? o.elements : []);
    const add = s.elements.filter((e) => !have.has(e));
    if (add.length) out.push(`add element ${t} ${s.name} { ${add.join(", ")} }`);
  }
  // 5. Rules of new and changed chains (their sets and jump targets exist now).
  for (const c of next.chains) {
    const o = oldChains.get(c.name);
    if (o && !recreatedChain(c) && o.rules.join("\n") === c.rules.join("\n")) continue;
    for (const r of c.rules) out.push(`add rule ${t} ${c.name} ${r}`);
  }
  // 6. Removed chains, then removed sets (rules naming them were flushed in 2).
  for (const c of old.chains) if (!newChains.has(c.name)) out.push(`delete chain ${t} ${c.name}`);
  for (const s of old.sets) if (!newSets.has(s.name)) out.push(`delete ${s.kind} ${t} ${s.name}`);
  return out.length ? out.join("\n") + "\n" : "";
}
