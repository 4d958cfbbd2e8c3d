import { linkSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import type { IpamAllocation, IpamGcReply, IpamReply } from "../../lib/ctl-api.ts";
import { parseCidr } from "../../lib/net/cidr.ts";
import type { ApiContext } from "./context.ts";

// The CNI plugin's IPAM records on this node as the operator sees them: one
// file per address, <ipamDir>/<network>/<address>, holding "containerID\nifname"
// (host-local's layout, lib/ipam/store.ts). Read here, never through the
// plugin's code: the daemon and the plugin share only the format.

/**
 * An address is a leak candidate when no pod on this node has it and its
 * record is older than this: an ADD in flight has written its record before
 * kubelet reports the pod's address.
 */
export const LEAK_GRACE_MS = 60_000;

interface Record {
  ip: string;
  network: string;
  containerId: string;
  ifname: string;
  mtimeMs: number;
}

function readRecords(ipamDir: string): Record[] {
  const out: Record[] = [];
  let networks: string[] = [];
  try {
    networks = readdirSync(ipamDir);
  } catch {
    return out;
  }
  for (const network of networks) {
    let names: string[];
    try {
      names = readdirSync(join(ipamDir, network));
    } catch {
      continue;
    }
    for (const ip of names) {
      if (ip.startsWith(".") || ip.startsWith("last_reserved_ip.")) continue;
      try {
        const path = join(ipamDir, network, ip);
        const [containerId = "", ifname = ""] = readFileSync(path, "utf8").split(/\r?\n/);
        out.push({ ip, network, containerId: containerId.trim(), ifname: ifname.trim(), mtimeMs: statSync(path).mtimeMs });
      } catch {
        // released meanwhile
      }
    }
  }
  return out;
}

function podAddresses(pods: V1Pod[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of pods) {
    const ref = `${p.metadata?.namespace}/${p.metadata?.name}`;
    for (const ip of [p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)]) if (ip) out.set(ip, ref);
  }
  return out;
}

function allocations(ctx: ApiContext, pods: V1Pod[], now: number): IpamAllocation[] {
  const byIp = podAddresses(pods);
  return readRecords(ctx.ipamDir)
    .map((r): IpamAllocation => {
      const pod = byIp.get(r.ip) ?? "";
      const leak = !pod && now - r.mtimeMs > LEAK_GRACE_MS;
      return { ip: r.ip, network: r.network, containerId: r.containerId, ifname: r.ifname, pod, allocated: new Date(r.mtimeMs).toISOString(), leak, ...(leak ? { reason: `no pod on ${ctx.nodeName} has this address` } : {}) };
    })
    .sort((a, b) => a.ip.localeCompare(b.ip, "en", { numeric: true }));
}

export async function ipam(ctx: ApiContext): Promise<IpamReply> {
  const all = allocations(ctx, await ctx.podsOnNode(), Date.now());
  const cidrs = (ctx.agent.snapshot().pass?.podCIDRs ?? []).map((cidr) => {
    const c = parseCidr(cidr);
    const size = 2 ** Math.min(52, (c.family === 4 ? 32 : 128) - c.prefix);
    return { cidr, size, used: all.filter((a) => a.ip.includes(":") === (c.family === 6)).length };
  });
  return { node: ctx.nodeName, cidrs, allocations: all, leaks: all.filter((a) => a.leak).length };
}

/**
 * Releases the leak candidates (apply) or lists them (dry run). A record is
 * first renamed aside, atomically, then checked again: if it is no longer the
 * leaked attachment's (released and claimed anew meanwhile), it goes back.
 */
export async function ipamGc(ctx: ApiContext, apply: boolean): Promise<IpamGcReply> {
  const leaks = allocations(ctx, await ctx.podsOnNode(), Date.now()).filter((a) => a.leak);
  const reply: IpamGcReply = { node: ctx.nodeName, apply, released: [], errors: [] };
  for (const a of leaks) {
    if (!apply) {
      reply.released.push(a);
      continue;
    }
    const path = join(ctx.ipamDir, a.network, a.ip);
    const aside = join(ctx.ipamDir, a.network, `.gc.${process.pid}.${a.ip}`);
    try {
      renameSync(path, aside);
      const [containerId = ""] = readFileSync(aside, "utf8").split(/\r?\n/);
      if (containerId.trim() !== a.containerId) {
        linkSync(aside, path);
        unlinkSync(aside);
        continue;
      }
      unlinkSync(aside);
      reply.released.push(a);
      ctx.log.info({ ip: a.ip, containerId: a.containerId, network: a.network }, "IPAM leak released (twillctl ipam gc --apply)");
    } catch (err) {
      reply.errors.push(`${a.ip}: ${(err as Error).message}`);
    }
  }
  return reply;
}
