import type { DiffReply, DiffRow } from "../../lib/ctl-api.ts";
import type { FdbSpec, NeighSpec, RouteSpec } from "../kernel/desired.ts";
import { linkIndexes } from "../kernel/links.ts";
import { rtnl } from "../kernel/netlink-socket.ts";
import { permanentFdb, permanentNeighbours } from "../kernel/neighbours.ts";
import { twillRoutes } from "../kernel/routes.ts";
import type { ApiContext } from "./context.ts";

// `twillctl routes` and `twillctl peers`: what the last pass wanted against
// what the kernel holds now, read the way reconcile reads it (Twill's
// protocol, its device's permanent entries), row by row.

function diff(kind: string, want: Map<string, string>, have: Map<string, string>): DiffRow[] {
  const rows: DiffRow[] = [];
  for (const [key, w] of want) {
    const h = have.get(key);
    rows.push({ kind, key, want: w, have: h ?? "", state: h === undefined ? "missing" : h === w ? "ok" : "differs" });
  }
  for (const [key, h] of have) if (!want.has(key)) rows.push({ kind, key, want: "", have: h, state: "extra" });
  return rows;
}

const reply = (node: string, rows: DiffRow[]): DiffReply => ({ node, rows, differences: rows.filter((r) => r.state !== "ok").length });
const routeText = (r: RouteSpec) => (r.blackhole ? "blackhole" : `via ${r.via} dev ${r.dev}${r.onlink ? " onlink" : ""}`);

export async function routes(ctx: ApiContext): Promise<DiffReply> {
  const want = ctx.agent.snapshot().pass?.desired.routes ?? [];
  const indexes = await linkIndexes(new Set(want.filter((r) => !r.blackhole).map((r) => r.dev)), rtnl);
  const names = new Map([...indexes].map(([n, i]) => [i, n]));
  const have = new Map<string, string>();
  for (const r of await twillRoutes(rtnl)) {
    have.set(r.dst, r.blackhole ? "blackhole" : `via ${r.gateway} dev ${names.get(r.oif) ?? `#${r.oif}`}${r.onlink ? " onlink" : ""}`);
  }
  return reply(ctx.nodeName, diff("route", new Map(want.map((r) => [r.dst, routeText(r)])), have));
}

export async function peers(ctx: ApiContext): Promise<DiffReply> {
  const d = ctx.agent.snapshot().pass?.desired;
  const devs = await linkIndexes((d?.links ?? []).map((l) => l.name), rtnl);
  const neigh = (n: NeighSpec[]) => new Map(n.map((x) => [`${x.dev} ${x.ip}`, `lladdr ${x.mac}`]));
  const fdb = (f: FdbSpec[]) => new Map(f.map((x) => [`${x.dev} ${x.mac}`, `dst ${x.dst}`]));
  return reply(ctx.nodeName, [
    ...diff("neighbour", neigh(d?.neighbours ?? []), neigh(await permanentNeighbours(devs, rtnl))),
    ...diff("fdb", fdb(d?.fdb ?? []), fdb(await permanentFdb(devs, rtnl))),
  ]);
}
