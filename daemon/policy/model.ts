import type { V1LabelSelector, V1Namespace, V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort, V1Pod } from "@kubernetes/client-node";
import { cidrContains, parseCidr, parseIp } from "../../lib/net/cidr.ts";

// Kubernetes NetworkPolicy (networking.k8s.io/v1) semantics as a pure
// function: is a connection from one endpoint to a pod allowed? This is the
// reference the nftables compiler is checked against, written from the API's
// rules. The subtle ones (defaulting, NotIn on a missing key, named ports on
// the destination pod, ipBlock matching pod IPs, empty rule lists isolating)
// each have a case in test/policy/netpol/, whose expectations come from a
// separately written oracle.

export type Protocol = "TCP" | "UDP" | "SCTP";
export type Direction = "Ingress" | "Egress";

export interface ClusterState {
  namespaces: V1Namespace[];
  pods: V1Pod[];
  policies: V1NetworkPolicy[];
}

/** One end of a connection: a pod, or an address outside the pods (ipBlock only can match it). */
export type Endpoint = { pod: V1Pod } | { ip: string };

export type Labels = Record<string, string>;

/** apimachinery's label selector: matchLabels AND matchExpressions; NotIn and DoesNotExist match a missing key. */
export function selectorMatches(sel: V1LabelSelector | undefined, labels: Labels): boolean {
  if (!sel) return true;
  // A for-in loop, not Object.entries: the daemon runs this for every pod when a peer is new, and the pairs' garbage showed up as collector pauses.
  const ml = sel.matchLabels;
  if (ml) for (const k in ml) if (labels[k] !== ml[k]) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        // An operator the API does not define selects nothing (validation rejects it upstream).
        return false;
    }
  }
  return true;
}

/** policyTypes defaulting: [Ingress], plus Egress when egress rules exist. */
export function policyTypes(p: V1NetworkPolicy): Direction[] {
  const t = p.spec?.policyTypes;
  if (t && t.length > 0) return t as Direction[];
  return (p.spec?.egress?.length ?? 0) > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

const nsOf = (pod: V1Pod) => pod.metadata?.namespace ?? "default";
const labelsOf = (o: { metadata?: { labels?: Labels } }) => o.metadata?.labels ?? {};

function namespaceLabels(state: ClusterState, name: string): Labels {
  const ns = state.namespaces.find((n) => n.metadata?.name === name);
  // The apiserver keeps kubernetes.io/metadata.name equal to the name.
  return { ...labelsOf(ns ?? {}), "kubernetes.io/metadata.name": name };
}

/** The policies that select `pod` and isolate it in `dir`. */
export function selectingPolicies(state: ClusterState, pod: V1Pod, dir: Direction): V1NetworkPolicy[] {
  return state.policies.filter(
    (p) => p.metadata?.namespace === nsOf(pod) && policyTypes(p).includes(dir) && selectorMatches(p.spec?.podSelector, labelsOf(pod)),
  );
}

export function endpointIp(e: Endpoint): string | undefined {
  return "ip" in e ? e.ip : e.pod.status?.podIP;
}

/** Every CIDR of the block parses; one that does not makes the whole block select nothing. */
export function validBlock(block: NonNullable<V1NetworkPolicyPeer["ipBlock"]>): boolean {
  try {
    for (const c of [block.cidr, ...(block.except ?? [])]) parseCidr(c);
    return true;
  } catch {
    return false;
  }
}

function ipBlockMatches(block: NonNullable<V1NetworkPolicyPeer["ipBlock"]>, ip: string | undefined): boolean {
  if (!ip || !validBlock(block)) return false;
  const { family, value } = parseIp(ip);
  if (!cidrContains(parseCidr(block.cidr), family, value)) return false;
  return !(block.except ?? []).some((x) => cidrContains(parseCidr(x), family, value));
}

/** Does `peer` (from a policy in namespace `policyNs`) select endpoint `e`? */
export function peerMatches(state: ClusterState, peer: V1NetworkPolicyPeer, policyNs: string, e: Endpoint): boolean {
  if (peer.ipBlock) return ipBlockMatches(peer.ipBlock, endpointIp(e));
  if (!("pod" in e)) return false;
  return peerSelectsPod(peer, policyNs, e.pod, namespaceLabels(state, nsOf(e.pod)));
}

/**
 * Does `peer` select `pod`, whose namespace carries `podNsLabels` (with
 * kubernetes.io/metadata.name)? The one definition of peer matching, shared
 * with the compiler's selector index.
 */
export function peerSelectsPod(peer: V1NetworkPolicyPeer, policyNs: string, pod: V1Pod, podNsLabels: Labels): boolean {
  if (peer.ipBlock) return ipBlockMatches(peer.ipBlock, pod.status?.podIP);
  if (peer.namespaceSelector) {
    if (!selectorMatches(peer.namespaceSelector, podNsLabels)) return false;
    return peer.podSelector ? selectorMatches(peer.podSelector, labelsOf(pod)) : true;
  }
  if (peer.podSelector) return nsOf(pod) === policyNs && selectorMatches(peer.podSelector, labelsOf(pod));
  // A peer with nothing set selects nothing (validation rejects it upstream).
  return false;
}

/** Does a rule's port entry admit `port/protocol` on destination `dst`? Named ports resolve on the destination pod. */
export function portMatches(entry: V1NetworkPolicyPort, dst: Endpoint, port: number, protocol: Protocol): boolean {
  const proto = (entry.protocol ?? "TCP") as Protocol;
  if (proto !== protocol) return false;
  if (entry.port === undefined || entry.port === null) return true;
  if (typeof entry.port === "number" || /^\d+$/.test(String(entry.port))) {
    const start = Number(entry.port);
    const end = entry.endPort ?? start;
    return port >= start && port <= end;
  }
  if (!("pod" in dst)) return false;
  return (dst.pod.spec?.containers ?? []).some((c) =>
    (c.ports ?? []).some((cp) => cp.name === entry.port && (cp.protocol ?? "TCP") === proto && cp.containerPort === port),
  );
}

interface Rule {
  ports?: V1NetworkPolicyPort[];
  peers?: V1NetworkPolicyPeer[];
}

function ruleMatches(state: ClusterState, rule: Rule, policyNs: string, peer: Endpoint, dst: Endpoint, port: number, protocol: Protocol): boolean {
  const portsOk = !rule.ports?.length || rule.ports.some((p) => portMatches(p, dst, port, protocol));
  const peersOk = !rule.peers?.length || rule.peers.some((p) => peerMatches(state, p, policyNs, peer));
  return portsOk && peersOk;
}

/**
 * An ingress rule's peers: `from` on the wire, `_from` once the typed client
 * has deserialised it (the generated model renames the keyword).
 */
function ingressPeers(r: { _from?: V1NetworkPolicyPeer[] }): V1NetworkPolicyPeer[] | undefined {
  return (r as { from?: V1NetworkPolicyPeer[] }).from ?? r._from;
}

/** May `src` send to `dst` (the sender's egress side)? */
export function egressAllowed(state: ClusterState, src: Endpoint, dst: Endpoint, port: number, protocol: Protocol): boolean {
  if (!("pod" in src)) return true;
  const policies = selectingPolicies(state, src.pod, "Egress");
  if (policies.length === 0) return true;
  return policies.some((p) =>
    (p.spec?.egress ?? []).some((r) => ruleMatches(state, { ports: r.ports, peers: r.to }, nsOf(src.pod), dst, dst, port, protocol)),
  );
}

/** May `dst` receive from `src` (the receiver's ingress side)? */
export function ingressAllowed(state: ClusterState, src: Endpoint, dst: Endpoint, port: number, protocol: Protocol): boolean {
  if (!("pod" in dst)) return true;
  const policies = selectingPolicies(state, dst.pod, "Ingress");
  if (policies.length === 0) return true;
  return policies.some((p) =>
    (p.spec?.ingress ?? []).some((r) => ruleMatches(state, { ports: r.ports, peers: ingressPeers(r) }, nsOf(dst.pod), src, dst, port, protocol)),
  );
}

/** A new connection needs both: the sender's egress and the receiver's ingress. Replies follow the connection. */
export function connectionAllowed(state: ClusterState, src: Endpoint, dst: Endpoint, port: number, protocol: Protocol): boolean {
  return egressAllowed(state, src, dst, port, protocol) && ingressAllowed(state, src, dst, port, protocol);
}
