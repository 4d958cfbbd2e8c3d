import { formatIp, parseCidr } from "../../../lib/net/cidr.ts";
import type { DaemonConfig } from "../../config.ts";
import { ANNOTATION, type ClusterView } from "../../cluster/view.ts";
import { emptyState, type DesiredState } from "../../kernel/desired.ts";
import type { Backend, LocalNode } from "../backend.ts";
import { onSameL2, peersOf } from "../peers.ts";
import { currentVtepMac } from "./vtep.ts";

export const VXLAN_DEVICE = "twill.vxlan";
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

const networkAddress = (cidr: string) => {
  const c = parseCidr(cidr);
  return formatIp(c.family, c.network);
};

// VXLAN, as flannel does it: one device per node whose address is the network
// address of the node's pod CIDR; for every peer a permanent neighbour entry
// (peer's network address → peer's VTEP MAC), a permanent FDB entry (VTEP MAC
// → peer's underlay address) and a route onlink via the peer's network
// address. The kernel never has to ARP or learn.
export function vxlanBackend(cfg: DaemonConfig): Backend {
  let mac = "";
  return {
    name: "vxlan",
    overhead: VXLAN_OVERHEAD,
    async prepare(local: LocalNode): Promise<Record<string, string>> {
      // Keep the MAC peers already know: from the device, else the annotation, else a new one.
      mac = (await currentVtepMac(VXLAN_DEVICE)) ?? local.info.annotations[ANNOTATION.vtepMac] ?? randomMac();
      return { [ANNOTATION.vtepMac]: mac, [ANNOTATION.backend]: "vxlan" };
    },
    desired(view: ClusterView, local: LocalNode, podMtu: number): DesiredState {
      const state = emptyState();
      state.links.push({
        name: VXLAN_DEVICE,
        vni: cfg.vxlan.vni,
        port: cfg.vxlan.port,
        local: local.underlay.address,
        dev: local.underlay.dev,
        mac,
        mtu: podMtu,
        addresses: local.info.podCIDRs.filter((c) => !c.includes(":")).map((c) => `${networkAddress(c)}/32`),
      });
      // One FDB entry per MAC on the device: two peers claiming one VTEP MAC
      // would take the entry from each other on every pass. The first by name
      // keeps it (every node picks the same one); the others are left out, named.
      const macOwner = new Map<string, string>(mac ? [[mac, local.info.name]] : []);
      for (const peer of peersOf(view, local)) {
        const direct = cfg.vxlan.directRouting && onSameL2(local, peer.ip);
        const peerMac = peer.annotations[ANNOTATION.vtepMac];
        const owner = peerMac && !direct ? macOwner.get(peerMac) : undefined;
        if (owner !== undefined) {
          const whose = owner === local.info.name ? "this node's own" : `node ${owner}'s`;
          state.leftOut.push({
            node: peer.name,
            code: "VTEP_MAC_CONFLICT",
            reason: `node ${peer.name}'s ${ANNOTATION.vtepMac} ${peerMac} is already ${whose} VTEP MAC; its pods stay unreachable by tunnel until one of the two gets a new MAC (delete the annotation and the twill.vxlan device on that node, then restart its daemon)`,
          });
          continue;
        }
        if (peerMac && !direct) macOwner.set(peerMac, peer.name);
        for (const cidr of peer.podCIDRs.filter((c) => !c.includes(":"))) {
          if (direct) {
            state.routes.push({ dst: cidr, via: peer.ip, dev: local.underlay.dev, onlink: false });
            continue;
          }
          // A peer that has not published its VTEP MAC yet cannot be reached by tunnel.
          if (!peerMac) continue;
          const gw = networkAddress(cidr);
          state.neighbours.push({ ip: gw, mac: peerMac, dev: VXLAN_DEVICE });
          state.fdb.push({ mac: peerMac, dev: VXLAN_DEVICE, dst: peer.ip });
          state.routes.push({ dst: cidr, via: gw, dev: VXLAN_DEVICE, onlink: true });
        }
      }
      return state;
    },
  };
}

function randomMac(): string {
  const b = Array.from({ length: 6 }, () => Math.floor(Math.random() * 256));
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}
