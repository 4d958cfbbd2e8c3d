import type { DesiredState, FdbSpec, NeighSpec, VxlanLink } from "./desired.ts";
import { batch, readJson } from "./ip.ts";
import { linkIndexes } from "./link-index.ts";
import { appendFdb, deleteFdb, deleteNeighbours, permanentFdb, permanentNeighbours, replaceNeighbours } from "./neighbours.ts";
import { rtnl, type RtnlSocket } from "./netlink-socket.ts";
import { reconcileRoutes } from "./routes.ts";
import { throwIfFailed } from "./write-failures.ts";

// Desired kernel state against the kernel: read, diff, apply only the
// difference (STYLE.md §2). Twill owns its VXLAN device by name and its routes
// by protocol number; nothing else is read or touched. Additions go in the
// order neighbour → FDB → route (route last, so the kernel never has to ARP for
// a next hop), removals in the reverse order. Routes, neighbours and FDB
// entries go over one rtnetlink socket (routes.ts, neighbours.ts): at 5,000
// peers an `ip`/`bridge` process per read and write, and its JSON, cost most
// of a pass. The rare device changes still go through `ip`.

export interface Changes {
  links: number;
  neighbours: number;
  fdb: number;
  routes: number;
}

export const totalChanges = (c: Changes) => c.links + c.neighbours + c.fdb + c.routes;

interface KLink {
  ifname: string;
  address: string;
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; link?: string; port?: number; learning?: boolean } };
  addr_info?: { local: string; prefixlen: number; family: string }[];
}
/** The VXLAN devices Twill may own (one per backend that uses one). */
const OWNED_LINKS = ["twill.vxlan"];

async function reconcileLinks(want: VxlanLink[]): Promise<number> {
  const lines: string[] = [];
  for (const name of OWNED_LINKS.filter((n) => !want.some((l) => l.name === n))) {
    if ((await readJson<KLink>(["ip", "-j", "link", "show", "dev", name])).length > 0) lines.push(`link del ${name}`);
  }
  for (const l of want) {
    const [have] = await readJson<KLink>(["ip", "-j", "-d", "addr", "show", "dev", l.name]);
    const d = have?.linkinfo?.info_data;
    const same = have && have.linkinfo?.info_kind === "vxlan" && d?.id === l.vni && d.local === l.local && d.link === l.dev && d.port === l.port && d.learning === false;
    if (have && !same) lines.push(`link del ${l.name}`);
    if (!have || !same) {
      lines.push(`link add ${l.name} address ${l.mac} mtu ${l.mtu} type vxlan id ${l.vni} local ${l.local} dev ${l.dev} dstport ${l.port} nolearning`);
      lines.push(`link set ${l.name} up`);
      for (const a of l.addresses) lines.push(`addr add ${a} dev ${l.name}`);
      continue;
    }
    if (have.address !== l.mac) lines.push(`link set ${l.name} address ${l.mac}`);
    if (have.mtu !== l.mtu) lines.push(`link set ${l.name} mtu ${l.mtu}`);
    if (!have.flags.includes("UP")) lines.push(`link set ${l.name} up`);
    const addrs = new Set((have.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`));
    for (const a of l.addresses) if (!addrs.has(a)) lines.push(`addr add ${a} dev ${l.name}`);
    for (const a of addrs) if (!l.addresses.includes(a)) lines.push(`addr del ${a} dev ${l.name}`);
  }
  return batch("ip", lines);
}

const neighKey = (n: NeighSpec) => `${n.dev} ${n.ip}`;
const fdbKey = (f: FdbSpec) => `${f.dev} ${f.mac} ${f.dst}`;

export async function reconcile(want: DesiredState, sock: RtnlSocket = rtnl): Promise<Changes> {
  const changes: Changes = { links: 0, neighbours: 0, fdb: 0, routes: 0 };
  const owned = want.links.map((l) => l.name);
  // Every device a pass names, resolved to its index once (routes too).
  const named = new Set([...owned, ...want.neighbours.map((n) => n.dev), ...want.fdb.map((f) => f.dev), ...want.routes.filter((r) => !r.blackhole).map((r) => r.dev)]);
  const readKernel = async () => {
    const indexes = await linkIndexes(named, sock);
    const devs = new Map(owned.flatMap((name) => (indexes.has(name) ? [[name, indexes.get(name)!] as const] : [])));
    return { indexes, neighbours: await permanentNeighbours(devs, sock), fdb: await permanentFdb(devs, sock) };
  };
  // Read beside the link check (an `ip` process, 20–50 ms here), and again
  // if a device was changed: a new device has a new index and no entries.
  const early = readKernel();
  early.catch(() => {});
  changes.links = await reconcileLinks(want.links);
  const now = changes.links > 0 ? await readKernel() : await early;

  const haveNeigh = new Map(now.neighbours.map((n) => [neighKey(n), n]));
  const haveFdb = new Map(now.fdb.map((f) => [fdbKey(f), f]));
  const wantNeigh = new Map(want.neighbours.map((n) => [neighKey(n), n]));
  const wantFdb = new Map(want.fdb.map((f) => [fdbKey(f), f]));

  // Additions and changes: neighbour, FDB, then route. A step that had
  // failures stops the pass before the next, as `ip -batch` did.
  const putNeigh = want.neighbours.filter((n) => haveNeigh.get(neighKey(n))?.mac !== n.mac);
  const putFdb = want.fdb.filter((f) => !haveFdb.has(fdbKey(f)));
  const neighAdded = await replaceNeighbours(putNeigh, now.indexes, sock);
  const fdbAdded = await appendFdb(putFdb, now.indexes, sock);
  changes.neighbours += neighAdded.written;
  changes.fdb += fdbAdded.written;
  throwIfFailed([...neighAdded.failed, ...fdbAdded.failed], putNeigh.length + putFdb.length, "neighbour and FDB writes");
  // Route changes and removals, then the FDB and neighbour removals.
  changes.routes += await reconcileRoutes(want.routes, sock, now.indexes);
  const staleFdb = [...haveFdb.values()].filter((f) => !wantFdb.has(fdbKey(f)));
  const fdbRemoved = await deleteFdb(staleFdb, now.indexes, sock);
  changes.fdb += fdbRemoved.written;
  throwIfFailed(fdbRemoved.failed, staleFdb.length, "FDB removals");
  const staleNeigh = [...haveNeigh.values()].filter((n) => !wantNeigh.has(neighKey(n)));
  const neighRemoved = await deleteNeighbours(staleNeigh, now.indexes, sock);
  changes.neighbours += neighRemoved.written;
  throwIfFailed(neighRemoved.failed, staleNeigh.length, "neighbour removals");
  return changes;
}
