import type { V1Node } from "@kubernetes/client-node";
import { TwillError } from "../../lib/errors.ts";
import { formatIp, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import type { LeftOut } from "./left-out.ts";

// The daemon's picture of the cluster's nodes, parsed from Node objects once.
// A node whose data is broken (no pod CIDR yet, a malformed annotation) is
// left out with a reason; it never stops the others.

export const ANNOTATION = {
  backend: "twill.dev/backend",
  vtepMac: "twill.dev/vtep-mac",
  publicIp: "twill.dev/public-ip",
  /** bgp backend: this node's AS number when it differs from the cluster's (then its sessions are eBGP). */
  bgpAs: "twill.dev/bgp-as",
  /** bgp backend: the router ID when BGPConfiguration.spec.routerIdSource is Annotation. */
  bgpRouterId: "twill.dev/bgp-router-id",
} as const;

export interface NodeInfo {
  name: string;
  podCIDRs: string[];
  /** The underlay address peers send to: the public-ip annotation, else InternalIP (canonical text, as the kernel prints it). */
  ip: string;
  annotations: Record<string, string>;
  /** The Node's labels (BGPPeer node selectors match them). */
  labels?: Record<string, string>;
}

export interface ClusterView {
  nodes: Map<string, NodeInfo>;
  /** Nodes left out, with the reason (for logs and metrics). */
  skipped: Map<string, LeftOut>;
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

export function parseNode(n: V1Node): NodeInfo {
  const name = n.metadata?.name ?? "";
  const annotations = n.metadata?.annotations ?? {};
  const podCIDRs = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  if (podCIDRs.length === 0) throw new TwillError("NODE_NO_POD_CIDR", `node ${name} has no spec.podCIDR yet`);
  for (const c of podCIDRs) parseCidr(c);
  const override = annotations[ANNOTATION.publicIp];
  const internal = n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
  const written = override ?? internal;
  if (!written) throw new TwillError("NODE_NO_ADDRESS", `node ${name} has no InternalIP and no ${ANNOTATION.publicIp} annotation`);
  let ip: string;
  try {
    const parsed = parseIp(written);
    ip = formatIp(parsed.family, parsed.value);
  } catch {
    throw new TwillError("NODE_BAD_ANNOTATION", `node ${name}: "${written}" is not an IP address (${override ? ANNOTATION.publicIp : "InternalIP"})`);
  }
  const mac = annotations[ANNOTATION.vtepMac];
  if (mac !== undefined && !MAC.test(mac)) {
    throw new TwillError("NODE_BAD_ANNOTATION", `node ${name}: ${ANNOTATION.vtepMac} "${mac}" is not a MAC address`);
  }
  // Kernel dumps print MACs in lower case: a hand-written upper-case annotation
  // compared as written would look like drift and be rewritten every pass.
  const normalized = mac === undefined ? annotations : { ...annotations, [ANNOTATION.vtepMac]: mac.toLowerCase() };
  return { name, podCIDRs, ip, annotations: normalized, labels: n.metadata?.labels ?? {} };
}

/**
 * Each Node object parsed once: the watch cache hands out the same slim object
 * until the Node changes, and parsing all of them again took ~35 ms a pass at
 * 5,000 nodes. NodeInfo is read-only to its users.
 */
const parsed = new WeakMap<V1Node, NodeInfo | LeftOut>();

function parseOnce(n: V1Node): NodeInfo | LeftOut {
  let p = parsed.get(n);
  if (!p) {
    try {
      p = parseNode(n);
    } catch (err) {
      p = { code: (err as { code?: string }).code ?? "NODE_INVALID", reason: (err as Error).message };
    }
    parsed.set(n, p);
  }
  return p;
}

export function buildView(nodes: Iterable<V1Node>): ClusterView {
  const view: ClusterView = { nodes: new Map(), skipped: new Map() };
  for (const n of nodes) {
    const p = parseOnce(n);
    if ("podCIDRs" in p) view.nodes.set(p.name, p);
    else view.skipped.set(n.metadata?.name ?? "?", p);
  }
  return view;
}
