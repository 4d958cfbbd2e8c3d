import type { StatusReply } from "../../lib/ctl-api.ts";
import { linkIndexes } from "../kernel/links.ts";
import { rtnl } from "../kernel/netlink-socket.ts";
import { permanentFdb, permanentNeighbours } from "../kernel/neighbours.ts";
import { twillRoutes } from "../kernel/routes.ts";
import type { ApiContext } from "./context.ts";

/** Isolated pods in a programmed table: its per-pod chains, by address. */
export function isolatedPods(chains: { name: string }[]): number {
  return new Set(chains.filter((c) => /^(in|eg)-\d/.test(c.name)).map((c) => c.name.slice(3))).size;
}

/** Twill's routes, neighbours and FDB entries in the kernel now, counted the way reconcile reads them. */
export async function kernelCounts(devices: string[]): Promise<StatusReply["kernel"]> {
  const indexes = await linkIndexes(devices, rtnl);
  return { routes: (await twillRoutes(rtnl)).length, neighbours: (await permanentNeighbours(indexes, rtnl)).length, fdb: (await permanentFdb(indexes, rtnl)).length };
}

export async function status(ctx: ApiContext): Promise<StatusReply> {
  const { pass, lastOk, lastError } = ctx.agent.snapshot();
  const d = pass?.desired;
  const table = ctx.policy?.programmed();
  const inputs = ctx.policy?.inputs();
  return {
    node: ctx.nodeName,
    version: ctx.version,
    backend: ctx.backend.name,
    ready: ctx.agent.ready(),
    live: ctx.agent.live(),
    lastSync: lastOk ? new Date(lastOk).toISOString() : null,
    lastError,
    mtu: pass?.mtu ?? null,
    podCIDRs: pass?.podCIDRs ?? [],
    counts: {
      routes: d?.routes.length ?? 0,
      neighbours: d?.neighbours.length ?? 0,
      fdb: d?.fdb.length ?? 0,
      isolatedPods: table ? isolatedPods(table.chains) : ctx.policy ? 0 : null,
      policies: inputs ? inputs.policies.length : null,
      // Services are kube-proxy's until Twill's service proxy runs on the node.
      services: null,
    },
    kernel: await kernelCounts((d?.links ?? []).map((l) => l.name)),
    policy: ctx.policy ? "on" : "off",
    bgp: ctx.backend.sessions?.() ?? [],
    leftOut: pass?.leftOut ?? [],
  };
}
