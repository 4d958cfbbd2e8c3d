import { readFileSync, writeFileSync } from "node:fs";
import { RTPROT_TWILL_POD } from "../../lib/kernel/protocols.ts";
import {
  delLinkByName, getLinkByName, newAddr, newRoute, newVeth, replaceNeigh, RT_SCOPE, RTPROT_BOOT, setLinkUp, type GsoSizes,
} from "../../lib/netlink/rtnl.ts";
import { dumpLinks, parseLink } from "../../lib/netlink/link.ts";
import { dumpRoutes, parseRoute } from "../../lib/netlink/routes.ts";
import { AF, RT_TABLE_MAIN } from "../../lib/netlink/rtnl.ts";
import { POD_GATEWAY_V4, POD_GATEWAY_V6 } from "../config.ts";
import { planAttachment, type AttachmentPlan, type DefaultRoutePolicy, type PodState } from "./plan.ts";
import { CniError, ErrorCode } from "../spec.ts";
import { attachmentAlias, hostVethName, vethMacs } from "./names.ts";
import { closeFd, ERRNO, NetlinkError, openNetns, Rtnl } from "./rtnetlink.ts";

// Routed veth, no bridge: the pod's address is a /32 (/128), its only
// neighbour is the gateway 169.254.1.1 (fe80::1), which the host end answers
// for. Both ends get static MACs and permanent neighbour entries, so no ARP is
// needed on the first packet; proxy ARP on the host end stays on as the
// fallback if someone flushes the pod's neighbour table. All kernel work is
// rtnetlink requests from this process (one socket in the node's namespace,
// one in the pod's).

export interface AttachRequest {
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  mtu: number;
  /** The pod's addresses, without prefix. */
  ips: string[];
  /** Extra routes for the pod; empty means a default route per family (as `defaultRoute` allows). */
  routes: { dst: string; gw?: string }[];
  defaultRoute: DefaultRoutePolicy;
  /** BIG TCP sizes for the pod's end and the node's end (the node file's); absent: the kernel's 64 KiB. */
  gso?: { pod: GsoSizes; host: GsoSizes };
}

export interface Attachment {
  hostIfname: string;
  hostMac: string;
  podMac: string;
  /** The routes the pod got through this attachment (dst, gateway). */
  routes: { dst: string; gw: string }[];
  /** The first Twill attachment of this container in the pod. */
  primary: boolean;
  /** The kernel lacks IPv6 force_forwarding: net.ipv6.conf.all.forwarding was turned on instead. */
  globalIpv6Forwarding: boolean;
}

const isV6 = (ip: string) => ip.includes(":");
const EAFNOSUPPORT = 97;
const hostPrefix = (ip: string) => (isV6(ip) ? 128 : 32);

function linkIndex(nl: Rtnl, name: string): number {
  const r = nl.request(`find ${name}`, getLinkByName(nl.nextSeq(), name));
  if (r.kind === "link") return r.index;
  throw new NetlinkError(`find ${name}`, r.kind === "error" ? r.errno : ERRNO.ENODEV);
}

function toCniError(err: unknown, step: string): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof NetlinkError) {
    // The pod's own routes were checked beforehand (plan.ts): a host route that exists means the address does too.
    if (err.errno === ERRNO.EEXIST && err.op.startsWith("route") && step.startsWith("host")) {
      return new CniError(ErrorCode.AddressConflict, `another interface on this node already routes a pod address (${err.op}); the address may be double-allocated`, err.message);
    }
    if (err.op.startsWith("open") || err.op.startsWith("setns")) {
      return new CniError(ErrorCode.NetnsFailure, "the pod's network namespace is gone or unusable", err.message);
    }
    return new CniError(ErrorCode.KernelFailure, `programming the ${step} failed`, err.message);
  }
  return new CniError(ErrorCode.KernelFailure, `programming the ${step} failed`, String(err));
}

function createPair(host: Rtnl, req: AttachRequest, name: string, macs: { host: string; pod: string }, podNs: number): void {
  const gso = req.gso ? { gso: req.gso.host, peerGso: req.gso.pod } : {};
  const msg = () => newVeth(host.nextSeq(), { name, mac: macs.host, mtu: req.mtu, peerName: req.ifname, peerMac: macs.pod, peerNetnsFd: podNs, ...gso });
  try {
    host.must(`link add ${name}`, msg());
  } catch (err) {
    // A retried ADD finds the pair of its first try: start from a clean slate.
    if (!(err instanceof NetlinkError && err.errno === ERRNO.EEXIST)) throw err;
    deleteLink(host, name);
    host.must(`link add ${name}`, msg());
  }
}

function programHost(nl: Rtnl, req: AttachRequest, name: string, podMac: string): { globalIpv6: boolean } {
  const index = linkIndex(nl, name);
  nl.must(`link set ${name} up`, setLinkUp(nl.nextSeq(), index, attachmentAlias(req)));
  // Proxy ARP: the host end answers for the gateway if the pod ever asks.
  writeFileSync(`/proc/sys/net/ipv4/conf/${name}/proxy_arp`, "1");
  const forwarding = enableForwarding(name, req.ips);
  for (const ip of req.ips) {
    // EXCL, not replace: an existing route to this address means another
    // attachment holds it, which must surface as a conflict.
    nl.must(`route add ${ip}/${hostPrefix(ip)} dev ${name}`, newRoute(nl.nextSeq(), { dst: `${ip}/${hostPrefix(ip)}`, oif: index, protocol: RTPROT_TWILL_POD, scope: RT_SCOPE.LINK }));
    nl.must(`neigh replace ${ip} dev ${name}`, replaceNeigh(nl.nextSeq(), index, ip, podMac));
  }
  return forwarding;
}

/**
 * The path is routed, so the host end must forward what the pod sends,
 * whatever the node's global setting (a node no daemon prepared has it off).
 * Only this device's switches are turned on: IPv4 forwards by the ingress
 * device's `forwarding`; IPv6 by `force_forwarding` (Linux 6.17+). Older
 * kernels forward IPv6 only with `all.forwarding`, which the plugin then
 * turns on as Debian's ptp does (and says so in its log).
 */
export function enableForwarding(name: string, ips: string[]): { globalIpv6: boolean } {
  if (ips.some((ip) => !isV6(ip))) writeFileSync(`/proc/sys/net/ipv4/conf/${name}/forwarding`, "1");
  if (!ips.some(isV6)) return { globalIpv6: false };
  writeFileSync(`/proc/sys/net/ipv6/conf/${name}/forwarding`, "1");
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${name}/force_forwarding`, "1");
    return { globalIpv6: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const all = "/proc/sys/net/ipv6/conf/all/forwarding";
  if (readFileSync(all, "utf8").trim() === "1") return { globalIpv6: false };
  writeFileSync(all, "1");
  return { globalIpv6: true };
}

/** The pod's devices and main-table routes, read before ADD changes anything. */
function readPodState(nl: Rtnl): PodState {
  const state: PodState = { links: [], routes: [] };
  nl.dump("link show (pod)", dumpLinks(nl.nextSeq()), (buf, m) => {
    const l = parseLink(buf, m);
    if (l) state.links.push({ index: l.index, name: l.name, mac: l.mac });
  });
  for (const family of [AF.INET, AF.INET6]) {
    try {
      nl.dump("route show (pod)", dumpRoutes(nl.nextSeq(), family), (buf, m) => {
        const r = parseRoute(buf, m);
        if (r && r.table === RT_TABLE_MAIN) state.routes.push({ dst: r.dst, oif: r.oif });
      });
    } catch (err) {
      // A kernel without IPv6 has no IPv6 routes to collide with.
      if (!(family === AF.INET6 && err instanceof NetlinkError && err.errno === EAFNOSUPPORT)) throw err;
    }
  }
  return state;
}

const gatewayOf = (dst: string) => (isV6(dst) ? POD_GATEWAY_V6 : POD_GATEWAY_V4);

function programPod(nl: Rtnl, req: AttachRequest, hostMac: string, plan: AttachmentPlan): { dst: string; gw: string }[] {
  const i = req.ifname;
  const index = linkIndex(nl, i);
  nl.must(`link set ${i} up`, setLinkUp(nl.nextSeq(), index));
  for (const ip of req.ips) nl.must(`addr add ${ip} dev ${i}`, newAddr(nl.nextSeq(), index, ip, hostPrefix(ip)));
  const v4 = req.ips.some((ip) => !isV6(ip));
  const v6 = req.ips.some(isV6);
  if (v4) {
    // A later attachment's link route to the gateway sits beside the first one's, told apart by its metric.
    const priority = plan.sharedGateway ? index : undefined;
    nl.must(`route add ${POD_GATEWAY_V4} dev ${i}`, newRoute(nl.nextSeq(), { dst: `${POD_GATEWAY_V4}/32`, oif: index, protocol: RTPROT_BOOT, scope: RT_SCOPE.LINK, ...(priority ? { priority } : {}) }));
    nl.must(`neigh replace ${POD_GATEWAY_V4}`, replaceNeigh(nl.nextSeq(), index, POD_GATEWAY_V4, hostMac));
  }
  if (v6) nl.must(`neigh replace ${POD_GATEWAY_V6}`, replaceNeigh(nl.nextSeq(), index, POD_GATEWAY_V6, hostMac));
  const routes = plan.routes.map((r) => ({ dst: r.dst, gw: r.gw ?? gatewayOf(r.dst) }));
  for (const r of routes) {
    nl.must(`route add ${r.dst} via ${r.gw}`, newRoute(nl.nextSeq(), { dst: r.dst, gateway: r.gw, oif: index, protocol: RTPROT_BOOT, scope: RT_SCOPE.UNIVERSE }));
  }
  return routes;
}

function deleteLink(nl: Rtnl, name: string): void {
  try {
    nl.must(`link del ${name}`, delLinkByName(nl.nextSeq(), name));
  } catch (err) {
    if (!(err instanceof NetlinkError && err.errno === ERRNO.ENODEV)) throw err;
  }
}

export async function attach(req: AttachRequest): Promise<Attachment> {
  const name = hostVethName(req.containerId, req.ifname);
  const macs = vethMacs(req.containerId, req.ifname);
  const host = Rtnl.open();
  let step = "host side of the pod's veth";
  try {
    let podNs: number;
    let pod: Rtnl;
    try {
      podNs = openNetns(req.netns);
    } catch (err) {
      throw toCniError(err, step);
    }
    try {
      try {
        pod = Rtnl.openIn(podNs);
      } catch (err) {
        throw toCniError(err, step);
      }
      try {
        // Refusals come from here, before anything is created.
        const plan = planAttachment(readPodState(pod), req);
        let forwarding: { globalIpv6: boolean };
        let routes: { dst: string; gw: string }[];
        try {
          createPair(host, req, name, macs, podNs);
          forwarding = programHost(host, req, name, macs.pod);
          step = "pod side of the veth";
          routes = programPod(pod, req, macs.host, plan);
        } catch (err) {
          // Deleting the host end removes the pod end, its routes and neighbours.
          deleteLink(host, name);
          throw err;
        }
        return { hostIfname: name, hostMac: macs.host, podMac: macs.pod, routes, primary: plan.primary, globalIpv6Forwarding: forwarding.globalIpv6 };
      } catch (err) {
        throw toCniError(err, step);
      } finally {
        pod.close();
      }
    } finally {
      closeFd(podNs);
    }
  } finally {
    host.close();
  }
}

/** Deletes the host end (the kernel removes the pod end, its routes and neighbours). Idempotent. */
export async function removeHostVeth(name: string): Promise<void> {
  const nl = Rtnl.open();
  try {
    deleteLink(nl, name);
  } catch (err) {
    throw new CniError(ErrorCode.KernelFailure, `could not delete ${name}`, String(err));
  } finally {
    nl.close();
  }
}

export async function detach(containerId: string, ifname: string): Promise<void> {
  await removeHostVeth(hostVethName(containerId, ifname));
}
