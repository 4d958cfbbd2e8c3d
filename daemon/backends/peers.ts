import { cidrContains, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import type { ClusterView, NodeInfo } from "../cluster/view.ts";
import type { LocalNode } from "./backend.ts";

/** Every other node with a pod CIDR, in a stable order. */
export function peersOf(view: ClusterView, local: LocalNode): NodeInfo[] {
  return [...view.nodes.values()].filter((n) => n.name !== local.info.name).sort((a, b) => a.name.localeCompare(b.name));
}

/** True when `ip` is on the local node's underlay subnet (reachable without a router). */
export function onSameL2(local: LocalNode, ip: string): boolean {
  const subnet = parseCidr(`${local.underlay.address}/${local.underlay.prefix}`);
  const { family, value } = parseIp(ip);
  return cidrContains(subnet, family, value);
}
