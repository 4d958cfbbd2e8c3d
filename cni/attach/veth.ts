import { writeFileSync } from "node:fs";
import { execSync as exec } from "../../lib/kernel/exec.ts";
import { RTPROT_TWILL_POD } from "../../lib/kernel/protocols.ts";
import { POD_GATEWAY_V4, POD_GATEWAY_V6 } from "../config.ts";
import { CniError, ErrorCode } from "../spec.ts";
import { attachmentAlias, hostVethName, vethMacs } from "./names.ts";

// Routed veth, no bridge: the pod's address is a /32 (/128), its only
// neighbour is the gateway 169.254.1.1 (fe80::1), which the host end answers
// for. Both ends get static MACs and permanent neighbour entries, so no ARP is
// needed on the first packet; proxy ARP on the host end stays on as the
// fallback if someone flushes the pod's neighbour table. All kernel work is
// two `ip -batch` runs (host side, then pod side): one process each, measured
// cheaper than any in-process alternative available to a self-contained binary.

export interface AttachRequest {
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  mtu: number;
  /** The pod's addresses, without prefix. */
  ips: string[];
  /** Extra routes for the pod; empty means a default route per family. */
  routes: { dst: string; gw?: string }[];
}

export interface Attachment {
  hostIfname: string;
  hostMac: string;
  podMac: string;
}

const isV6 = (ip: string) => ip.includes(":");

function hostBatch(req: AttachRequest, host: string, macs: { host: string; pod: string }): string {
  const lines = [
    `link add ${host} mtu ${req.mtu} address ${macs.host} type veth peer name ${req.ifname} mtu ${req.mtu} address ${macs.pod} netns ${req.netns}`,
    `link set ${host} alias ${attachmentAlias(req)}`,
    `link set ${host} up`,
  ];
  for (const ip of req.ips) {
    const plen = isV6(ip) ? 128 : 32;
    // `add`, not `replace`: an existing route to this address means another
    // attachment holds it, which must surface as a conflict.
    lines.push(`route add ${ip}/${plen} dev ${host} proto ${RTPROT_TWILL_POD} scope link`);
    lines.push(`neigh replace ${ip} lladdr ${macs.pod} dev ${host} nud permanent`);
  }
  return lines.join("\n") + "\n";
}

function podBatch(req: AttachRequest, macs: { host: string; pod: string }): string {
  const i = req.ifname;
  const lines = [`link set ${i} up`];
  const v4 = req.ips.some((ip) => !isV6(ip));
  const v6 = req.ips.some(isV6);
  for (const ip of req.ips) lines.push(isV6(ip) ? `addr add ${ip}/128 dev ${i} nodad` : `addr add ${ip}/32 dev ${i}`);
  if (v4) {
    lines.push(`route add ${POD_GATEWAY_V4} dev ${i} scope link`);
    lines.push(`neigh replace ${POD_GATEWAY_V4} lladdr ${macs.host} dev ${i} nud permanent`);
  }
  if (v6) lines.push(`neigh replace ${POD_GATEWAY_V6} lladdr ${macs.host} dev ${i} nud permanent`);
  const routes = req.routes.length > 0 ? req.routes : [
    ...(v4 ? [{ dst: "0.0.0.0/0" }] : []),
    ...(v6 ? [{ dst: "::/0" }] : []),
  ];
  for (const r of routes) {
    const gw = r.gw ?? (isV6(r.dst) ? POD_GATEWAY_V6 : POD_GATEWAY_V4);
    lines.push(`route add ${r.dst} via ${gw} dev ${i}`);
  }
  return lines.join("\n") + "\n";
}

function batchError(step: string, details: string): CniError {
  if (/File exists/.test(details) && details.startsWith("route add")) {
    return new CniError(ErrorCode.AddressConflict, `another interface on this node already routes a pod address (${step}); the address may be double-allocated`, details);
  }
  if (/No such file|Invalid "netns"|netns/.test(details)) {
    return new CniError(ErrorCode.NetnsFailure, "the pod's network namespace is gone or unusable", details);
  }
  return new CniError(ErrorCode.KernelFailure, `programming the ${step} failed`, details);
}

async function ipBatch(argvPrefix: string[], batch: string, step: string): Promise<void> {
  const r = await exec([...argvPrefix, "ip", "-batch", "-"], { input: batch, allowFailure: true });
  if (r.code !== 0) {
    // ip names the failing line ("Command failed -:N"); show that command.
    const m = /Command failed -:(\d+)/.exec(r.stderr);
    const line = m ? batch.split("\n")[Number(m[1]) - 1] : undefined;
    throw batchError(step, `${line ? `${line}: ` : ""}${r.stderr.trim()}`);
  }
}

export async function attach(req: AttachRequest): Promise<Attachment> {
  const host = hostVethName(req.containerId, req.ifname);
  const macs = vethMacs(req.containerId, req.ifname);
  try {
    try {
      await ipBatch([], hostBatch(req, host, macs), "host side of the pod's veth");
    } catch (err) {
      // A retried ADD finds the veth of its first try: start from a clean slate.
      if (!(err instanceof CniError && /^link add .*File exists/s.test(err.details))) throw err;
      await removeHostVeth(host);
      await ipBatch([], hostBatch(req, host, macs), "host side of the pod's veth");
    }
    // Proxy ARP: the host end answers for the gateway if the pod ever asks.
    writeFileSync(`/proc/sys/net/ipv4/conf/${host}/proxy_arp`, "1");
    await ipBatch(["nsenter", `--net=${req.netns}`], podBatch(req, macs), "pod side of the veth");
  } catch (err) {
    await removeHostVeth(host);
    throw err;
  }
  return { hostIfname: host, hostMac: macs.host, podMac: macs.pod };
}

/** Deletes the host end (the kernel removes the pod end, its routes and neighbours). Idempotent. */
export async function removeHostVeth(host: string): Promise<void> {
  const r = await exec(["ip", "link", "del", host], { allowFailure: true });
  if (r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) {
    throw new CniError(ErrorCode.KernelFailure, `could not delete ${host}`, r.stderr.trim());
  }
}

export async function detach(containerId: string, ifname: string): Promise<void> {
  await removeHostVeth(hostVethName(containerId, ifname));
}
