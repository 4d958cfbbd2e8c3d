import { join } from "node:path";
import { addNetns, execIn } from "../lib/kernel/netns.ts";
import { CONTROL_PLANE_IP, controlPlaneNs, nodeIp, nodeName, nodeNs, ROUTER_IP, routerNs, underlayNs } from "./names.ts";

// Hosts are network namespaces on one underlay: a bridge that lives in the
// lab's own underlay namespace (never in the machine's namespace). Each host
// has eth0 on that bridge. A router host at the underlay's first address is
// every node's default gateway, as a real node has one: traffic for no known
// network (an unallocated ClusterIP, the internet) goes there and ends there,
// since the router leads nowhere. It is also where "outside the cluster"
// clients (NodePort probes, the e2e runner) live.

async function plug(lab: string, hostNs: string, port: string, address: string): Promise<void> {
  const ul = underlayNs(lab);
  await execIn(ul, ["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", hostNs]);
  await execIn(ul, ["ip", "link", "set", port, "master", "br0", "up"]);
  await execIn(hostNs, ["ip", "addr", "add", `${address}/24`, "dev", "eth0"]);
  await execIn(hostNs, ["ip", "link", "set", "eth0", "up"]);
}

export async function createUnderlay(lab: string): Promise<void> {
  const ul = underlayNs(lab);
  await addNetns(ul);
  await execIn(ul, ["ip", "link", "add", "br0", "type", "bridge"]);
  await execIn(ul, ["ip", "link", "set", "br0", "up"]);
}

export async function createControlPlaneHost(lab: string): Promise<void> {
  const ns = controlPlaneNs(lab);
  await addNetns(ns);
  await plug(lab, ns, "cp", CONTROL_PLANE_IP);
}

export async function createRouterHost(lab: string): Promise<string> {
  const ns = routerNs(lab);
  await addNetns(ns);
  await plug(lab, ns, "rt", ROUTER_IP);
  return ns;
}

/** Raises devices' GSO/GRO limits inside `ns` (lab/link-gso.ts). */
export async function setGso(ns: string, size: number, devs: string[]): Promise<void> {
  await execIn(ns, [process.execPath, join(import.meta.dirname, "link-gso.ts"), String(size), ...devs]);
}

/** A node host; with `gso`, its underlay link (both ends) takes BIG TCP packets up to that size. */
export async function createNodeHost(lab: string, i: number, gso?: number): Promise<string> {
  const ns = nodeNs(lab, nodeName(i));
  await addNetns(ns);
  await plug(lab, ns, `n${i}`, nodeIp(i));
  if (gso) {
    await setGso(underlayNs(lab), gso, [`n${i}`]);
    await setGso(ns, gso, ["eth0"]);
  }
  await execIn(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  await execIn(ns, ["ip", "route", "add", "default", "via", ROUTER_IP, "dev", "eth0"]);
  return ns;
}
