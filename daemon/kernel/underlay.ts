import { TwillError } from "../../lib/errors.ts";
import { GSO_LEGACY_MAX_SIZE, type GsoSizes } from "../../lib/netlink/rtnl.ts";
import type { NodeFile } from "../../lib/node-file.ts";
import { readJson } from "./ip.ts";
import { readLink } from "./links.ts";
import { rtnl, type RtnlSocket } from "./netlink-socket.ts";

interface KAddr {
  ifname: string;
  mtu: number;
  addr_info?: { local: string; prefixlen: number }[];
}

export interface Underlay {
  dev: string;
  address: string;
  prefix: number;
  mtu: number;
  /** The device's GSO/GRO size limits (BIG TCP when above 64 KiB); absent when not read. */
  limits?: { gso: GsoSizes; gro: GsoSizes };
}

/** The device holding the node's underlay address, its prefix, MTU and size limits (read on every verifying pass: they can change). */
export async function findUnderlay(ip: string, sock: RtnlSocket = rtnl): Promise<Underlay> {
  for (const link of await readJson<KAddr>(["ip", "-j", "addr", "show"])) {
    const a = link.addr_info?.find((x) => x.local === ip);
    if (!a) continue;
    const dev = await readLink(link.ifname, sock);
    return { dev: link.ifname, address: ip, prefix: a.prefixlen, mtu: link.mtu, ...(dev ? { limits: { gso: dev.gso, gro: dev.gro } } : {}) };
  }
  throw new TwillError("UNDERLAY_NOT_FOUND", `no interface on this node holds its address ${ip} (InternalIP or twill.dev/public-ip)`);
}

/**
 * BIG TCP for pods follows the underlay: when the operator has raised the
 * device's GSO size above 64 KiB, new pods' veths take it, so a pod's TCP
 * stream crosses the node in packets up to that size (fewer per-packet costs:
 * forwarding, conntrack, policy). The pod's end may build no larger packet
 * than the underlay sends whole (a larger one would be cut up in software);
 * the node's end must pass on whole what the underlay's GRO builds. Never
 * through a tunnel: an encapsulated packet's outer UDP length is 16 bits, and
 * measured here a BIG packet into VXLAN cut a stream from 10 to 0.3 Gbit/s.
 */
export function podGsoSizes(limits: Underlay["limits"], encapsulated: boolean): NodeFile["gso"] {
  if (!limits || encapsulated) return undefined;
  const orLegacy = (n: number) => n || GSO_LEGACY_MAX_SIZE;
  const pod = { ipv4: orLegacy(limits.gso.ipv4), ipv6: orLegacy(limits.gso.ipv6) };
  const host = { ipv4: Math.max(pod.ipv4, limits.gro.ipv4), ipv6: Math.max(pod.ipv6, limits.gro.ipv6) };
  const big = [pod.ipv4, pod.ipv6, host.ipv4, host.ipv6].some((n) => n > GSO_LEGACY_MAX_SIZE);
  return big ? { pod, host } : undefined;
}
