import { formatIp, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import type { ClusterView, NodeInfo } from "../cluster/view.ts";
import type { DesiredState, PeerLeftOut, RouteSpec } from "../kernel/desired.ts";
import { isWireguardKey } from "./keys.ts";

// Which peers the WireGuard device gets, computed from the cluster view
// (pure): one peer per node that published a valid public key and endpoint,
// allowed IPs = its pod CIDRs (both families). A node without a usable key is
// left out with one reason, and its pod CIDRs get a blackhole route: nothing
// for it is ever sent in the clear.

export const WG_DEVICE = "twill.wg";
export const WG_ANNOTATION = {
  publicKey: "twill.dev/wireguard-public-key",
  /** "address:port" ("[v6]:port") the node's device listens on. */
  endpoint: "twill.dev/wireguard-endpoint",
  /** Set (to any new value) by an operator to ask for a new key pair. */
  rotate: "twill.dev/wireguard-rotate",
  /** The rotate value the daemon acted on last. */
  rotated: "twill.dev/wireguard-rotated",
} as const;

/** Outer IPv4 (20) / IPv6 (40) + UDP (8) + WireGuard header (16) + tag (16). */
export const wireguardOverhead = (underlayAddress: string) => (underlayAddress.includes(":") ? 80 : 60);

export interface WgPeer {
  node: string;
  publicKey: string;
  endpoint: string;
  allowedIps: string[];
}

/** "address:port" with the address in the kernel's spelling, or undefined when malformed. */
export function parseEndpoint(text: string): string | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([0-9.]+):(\d+)$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  try {
    const ip = parseIp(m[1]!);
    const addr = formatIp(ip.family, ip.value);
    return ip.family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
  } catch {
    return undefined;
  }
}

export const endpointOf = (address: string, port: number) => (address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`);

/** A pod CIDR in the spelling wireguard prints in allowed IPs. */
const canonical = (cidr: string) => {
  const c = parseCidr(cidr);
  return `${formatIp(c.family, c.network)}/${c.prefix}`;
};

function peerOf(n: NodeInfo, taken: Map<string, string>): WgPeer | PeerLeftOut {
  const key = n.annotations[WG_ANNOTATION.publicKey];
  const ep = n.annotations[WG_ANNOTATION.endpoint];
  const unreachable = "its pods are unreachable from here until it does; nothing is sent to them unencrypted";
  if (key === undefined) return { node: n.name, code: "WG_NO_KEY", reason: `node ${n.name} has published no WireGuard public key (${WG_ANNOTATION.publicKey}): is encryption on there and its daemon running? ${unreachable}` };
  if (!isWireguardKey(key)) return { node: n.name, code: "WG_KEY_INVALID", reason: `node ${n.name}'s ${WG_ANNOTATION.publicKey} is not a WireGuard public key (base64 of 32 bytes); its daemon republishes its key when it runs — ${unreachable}` };
  const owner = taken.get(key);
  if (owner !== undefined) return { node: n.name, code: "WG_KEY_CONFLICT", reason: `node ${n.name}'s WireGuard public key is already ${owner === "" ? "this node's own" : `node ${owner}'s`}; one of the two must rotate its key (annotate it ${WG_ANNOTATION.rotate}=<new value>) — ${unreachable}` };
  const endpoint = ep === undefined ? undefined : parseEndpoint(ep);
  if (endpoint === undefined) return { node: n.name, code: "WG_NO_ENDPOINT", reason: `node ${n.name}'s ${WG_ANNOTATION.endpoint} is ${ep === undefined ? "missing" : `"${ep}", not address:port`}; ${unreachable}` };
  taken.set(key, n.name);
  return { node: n.name, publicKey: key, endpoint, allowedIps: n.podCIDRs.map(canonical) };
}

/** The device's peers for this view, and the nodes left out (sorted by name: every node decides conflicts alike). */
export function wireguardPeers(view: ClusterView, self: string, ownPublicKey: string): { peers: WgPeer[]; leftOut: PeerLeftOut[] } {
  const taken = new Map<string, string>([[ownPublicKey, ""]]);
  const peers: WgPeer[] = [];
  const leftOut: PeerLeftOut[] = [];
  for (const n of [...view.nodes.values()].filter((n) => n.name !== self).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = peerOf(n, taken);
    if ("publicKey" in p) peers.push(p);
    else leftOut.push(p);
  }
  return { peers, leftOut };
}

/**
 * The backend's state with every peer's pod CIDR routed into the WireGuard
 * device instead (or blackholed when the peer is left out, by the backend or
 * here). The backend keeps everything else (its device, BGP's own block,
 * routes to other networks). Routes are matched by their exact destination:
 * every backend routes a peer by its pod CIDRs as the Node carries them.
 */
export function encryptedState(backend: DesiredState, view: ClusterView, self: string, peers: WgPeer[], leftOut: PeerLeftOut[]): DesiredState {
  const encrypted = new Set(peers.map((p) => p.node));
  const out = new Set([...leftOut, ...backend.leftOut].map((p) => p.node));
  const peerCidrs = new Set<string>();
  const routes: RouteSpec[] = [];
  for (const n of view.nodes.values()) {
    if (n.name === self) continue;
    for (const dst of n.podCIDRs) {
      peerCidrs.add(dst);
      if (encrypted.has(n.name) && !out.has(n.name)) routes.push({ dst, via: "", dev: WG_DEVICE, onlink: false });
      else routes.push({ dst, via: "", dev: "", onlink: false, blackhole: true });
    }
  }
  return {
    ...backend,
    routes: [...backend.routes.filter((r) => !peerCidrs.has(r.dst)), ...routes],
    leftOut: [...backend.leftOut, ...leftOut.filter((p) => !backend.leftOut.some((b) => b.node === p.node))],
  };
}
