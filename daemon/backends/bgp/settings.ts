import type { Logger } from "../../../lib/log.ts";
import { BGP_PORT, type PeerConfig } from "../../bgp/speaker/config.ts";
import { ANNOTATION, type NodeInfo } from "../../cluster/view.ts";
import type { BgpConfig } from "../../config.ts";
import type { BgpPeerSpec, ClusterBgp } from "./crd.ts";

// Who this node is in BGP and whom it peers with, from config.yaml's bgp
// section, the BGPConfiguration (which wins) and the node annotations
// twill.dev/bgp-as (a per-node AS) and twill.dev/bgp-router-id.

export interface Settings {
  asn: number;
  port: number;
  routerId: string;
  restartTime: number;
}

/**
 * A BGPPeer's prefix limit when its spec names none. An external router
 * that leaks a full table (~1M prefixes) must not take the node's memory
 * (manifests/twill.yaml limits the daemon to 512 MiB): this many fit with
 * room to spare (docs/bgp.md has the measured cost per prefix).
 */
export const DEFAULT_PEER_MAX_PREFIXES = 100_000;

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** A node's AS: its annotation when valid, else the cluster's. */
export function nodeAsn(node: NodeInfo, clusterAsn: number, log?: Logger): number {
  const text = node.annotations[ANNOTATION.bgpAs];
  if (text === undefined) return clusterAsn;
  const n = Number(text);
  if (/^\d+$/.test(text) && n >= 1 && n <= 0xffffffff) return n;
  warnOnce(log, `${node.name} ${text}`, `node ${node.name} has ${ANNOTATION.bgpAs}="${text}", not an AS number (1..4294967295): using the cluster's AS ${clusterAsn}; fix the annotation`);
  return clusterAsn;
}

const warned = new Set<string>();
function warnOnce(log: Logger | undefined, key: string, msg: string): void {
  if (!log || warned.has(key)) return;
  warned.add(key);
  log.warn({ code: "BGP_CONFIG_INVALID" }, msg);
}

export function settingsFor(bgp: BgpConfig, crd: ClusterBgp | undefined, self: NodeInfo, log?: Logger): Settings {
  const clusterAsn = crd?.asn ?? bgp.asn;
  let routerId = self.ip;
  if (crd?.routerIdSource === "Annotation") {
    const id = self.annotations[ANNOTATION.bgpRouterId];
    if (id && IPV4.test(id)) routerId = id;
    else warnOnce(log, `rid ${self.name} ${id}`, `BGPConfiguration asks for router IDs from ${ANNOTATION.bgpRouterId} but node ${self.name} has "${id ?? ""}": using its address ${self.ip}; set the annotation to a dotted-quad`);
  }
  return { asn: nodeAsn(self, clusterAsn, log), port: crd?.port ?? bgp.port, routerId, restartTime: crd?.restartTime ?? bgp.restartTime };
}

/**
 * The speaker's peers: with the mesh, every other node (in its own AS, so a
 * node with another AS gets eBGP), then each BGPPeer whose node selector
 * matches this node (an explicit BGPPeer wins over the mesh for the same
 * address). IPv6 peers are left out: the backend installs IPv4 routes only.
 */
export function wantedPeers(self: Settings, mesh: boolean, clusterAsn: number, others: NodeInfo[], peers: BgpPeerSpec[], local: NodeInfo, log?: Logger): Map<string, PeerConfig> {
  const out = new Map<string, PeerConfig>();
  if (mesh) for (const n of others) if (!n.ip.includes(":")) out.set(n.ip, { address: n.ip, asn: nodeAsn(n, clusterAsn, log), port: self.port });
  for (const p of peers) {
    if (!p.selects(local.labels ?? {})) continue;
    if (p.address.includes(":")) {
      warnOnce(log, `v6 ${p.name}`, `BGPPeer ${p.name} has an IPv6 address: the bgp backend peers over IPv4 only for now; the peer is ignored`);
      continue;
    }
    const max = p.maxPrefixes ?? { limit: DEFAULT_PEER_MAX_PREFIXES };
    out.set(p.address, {
      address: p.address,
      asn: p.asn,
      port: BGP_PORT,
      ...(p.holdTime !== undefined ? { holdTime: p.holdTime } : {}),
      ...(p.password !== undefined ? { password: p.password } : {}),
      ...(max.limit > 0 ? { maxPrefixes: max } : {}),
    });
  }
  return out;
}
