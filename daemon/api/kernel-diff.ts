import type { DiffReply, DiffRow } from "../../lib/ctl-api.ts";
import { cidrContains, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import type { PassSnapshot } from "../agent.ts";
import type { FdbSpec, NeighSpec, RouteSpec } from "../kernel/desired.ts";
import { linkIndexes } from "../kernel/links.ts";
import { rtnl } from "../kernel/netlink-socket.ts";
import { permanentFdb, permanentNeighbours } from "../kernel/neighbours.ts";
import { twillRoutes } from "../kernel/routes.ts";
import type { ApiContext } from "./context.ts";

// `twillctl routes` and `twillctl peers`: what the last pass wanted against
// what the kernel holds now, read the way reconcile reads it (Twill's
// protocol, its device's permanent entries), row by row.

type Peers = PassSnapshot["peers"];

/** The peer an entry is for: its pod CIDR holds the route's destination or the neighbour's address, or its underlay address is the FDB entry's remote. */
function peerOf(peers: Peers, kind: string, key: string, value: string): string {
  const addr = kind === "fdb" ? value.replace(/^dst /, "") : kind === "route" ? key.split("/")[0]! : key.split(" ").pop()!;
  if (kind === "fdb") return peers.find((p) => p.ip === addr)?.name ?? "";
  try {
    const { family, value: v } = parseIp(addr);
    return peers.find((p) => p.podCIDRs.some((c) => cidrContains(parseCidr(c), family, v)))?.name ?? "";
  } catch {
    return "";
  }
}

function diff(kind: string, want: Map<string, string>, have: Map<string, string>, peers: Peers): DiffRow[] {
  const rows: DiffRow[] = [];
  for (const [key, w] of want) {
    const h = have.get(key);
    rows.push({ peer: peerOf(peers, kind, key, w), kind, key, want: w, have: h ?? "", state: h === undefined ? "missing" : h === w ? "ok" : "differs" });
  }
  for (const [key, h] of have) if (!want.has(key)) rows.push({ peer: peerOf(peers, kind, key, h), kind, key, want: "", have: h, state: "extra" });
  return rows;
}

const reply = (node: string, rows: DiffRow[]): DiffReply => ({ node, rows, differences: rows.filter((r) => r.state !== "ok").length });
const routeText = (r: RouteSpec) => (r.blackhole ? "blackhole" : `via ${r.via} dev ${r.dev}${r.onlink ? " onlink" : ""}`);

async function routeRows(ctx: ApiContext): Promise<DiffRow[]> {
  const pass = ctx.agent.snapshot().pass;
  const want = pass?.desired.routes ?? [];
  const indexes = await linkIndexes(new Set(want.filter((r) => !r.blackhole).map((r) => r.dev)), rtnl);
  const names = new Map([...indexes].map(([n, i]) => [i, n]));
  const have = new Map<string, string>();
  for (const r of await twillRoutes(rtnl)) {
    have.set(r.dst, r.blackhole ? "blackhole" : `via ${r.gateway} dev ${names.get(r.oif) ?? `#${r.oif}`}${r.onlink ? " onlink" : ""}`);
  }
  return diff("route", new Map(want.map((r) => [r.dst, routeText(r)])), have, pass?.peers ?? []);
}

export async function routes(ctx: ApiContext): Promise<DiffReply> {
  return reply(ctx.nodeName, await routeRows(ctx));
}

/** Per peer node: its route, and with VXLAN its neighbour and FDB entries. */
export async function peers(ctx: ApiContext): Promise<DiffReply> {
  const pass = ctx.agent.snapshot().pass;
  const d = pass?.desired;
  const known = pass?.peers ?? [];
  const devs = await linkIndexes((d?.links ?? []).map((l) => l.name), rtnl);
  const neigh = (n: NeighSpec[]) => new Map(n.map((x) => [`${x.dev} ${x.ip}`, `lladdr ${x.mac}`]));
  const fdb = (f: FdbSpec[]) => new Map(f.map((x) => [`${x.dev} ${x.mac}`, `dst ${x.dst}`]));
  const rows = [
    ...(await routeRows(ctx)).filter((r) => r.peer !== ""),
    ...diff("neighbour", neigh(d?.neighbours ?? []), neigh(await permanentNeighbours(devs, rtnl)), known),
    ...diff("fdb", fdb(d?.fdb ?? []), fdb(await permanentFdb(devs, rtnl)), known),
  ];
  rows.sort((a, b) => a.peer.localeCompare(b.peer, "en", { numeric: true }));
  return reply(ctx.nodeName, rows);
}
