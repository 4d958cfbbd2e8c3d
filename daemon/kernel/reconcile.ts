import type { FdbSpec, KernelState, NeighSpec } from "./desired.ts";
import { linkIndexes, reconcileLinks } from "./links.ts";
import { deleteFdb, deleteNeighbours, permanentFdb, permanentNeighbours, replaceFdb, replaceNeighbours } from "./neighbours.ts";
import { rtnl, type RtnlSocket } from "./netlink-socket.ts";
import { reconcileRoutes } from "./routes.ts";
import { throwIfFailed } from "./write-failures.ts";

// Desired kernel state against the kernel: read, diff, apply only the
// difference (STYLE.md §2). Twill owns its VXLAN device by name and its routes
// by protocol number; nothing else is read or touched. Additions go in the
// order neighbour → FDB → route (route last, so the kernel never has to ARP for
// a next hop), removals in the reverse order. Routes, neighbours and FDB
// entries, and the reads of devices, go over one rtnetlink socket (routes.ts,
// neighbours.ts, links.ts): at 5,000 peers an `ip`/`bridge` process per read
// and write, and its JSON, cost most of a pass. The rare device changes still
// go through `ip -batch`.

export interface Changes {
  links: number;
  neighbours: number;
  fdb: number;
  routes: number;
}

export const totalChanges = (c: Changes) => c.links + c.neighbours + c.fdb + c.routes;

const neighKey = (n: NeighSpec) => `${n.dev} ${n.ip}`;
const fdbKey = (f: FdbSpec) => `${f.dev} ${f.mac} ${f.dst}`;

export async function reconcile(want: KernelState, sock: RtnlSocket = rtnl): Promise<Changes> {
  const changes: Changes = { links: 0, neighbours: 0, fdb: 0, routes: 0 };
  const owned = want.links.map((l) => l.name);
  // Every device a pass names, resolved to its index once (routes too).
  const named = new Set([...owned, ...want.neighbours.map((n) => n.dev), ...want.fdb.map((f) => f.dev), ...want.routes.filter((r) => !r.blackhole).map((r) => r.dev)]);
  const readKernel = async () => {
    const indexes = await linkIndexes(named, sock);
    const devs = new Map(owned.flatMap((name) => (indexes.has(name) ? [[name, indexes.get(name)!] as const] : [])));
    return { indexes, neighbours: await permanentNeighbours(devs, sock), fdb: await permanentFdb(devs, sock) };
  };
  // Entries are read after the device check: a device made again there has a
  // new index and no entries.
  changes.links = await reconcileLinks(want.links, sock);
  const now = await readKernel();

  const haveNeigh = new Map(now.neighbours.map((n) => [neighKey(n), n]));
  const haveFdb = new Map(now.fdb.map((f) => [fdbKey(f), f]));
  const wantNeigh = new Map(want.neighbours.map((n) => [neighKey(n), n]));
  const wantFdb = new Map(want.fdb.map((f) => [fdbKey(f), f]));

  // Additions and changes: neighbour, FDB, then route. A step that had
  // failures stops the pass before the next, as `ip -batch` did.
  const putNeigh = want.neighbours.filter((n) => haveNeigh.get(neighKey(n))?.mac !== n.mac);
  const putFdb = want.fdb.filter((f) => !haveFdb.has(fdbKey(f)));
  const neighAdded = await replaceNeighbours(putNeigh, now.indexes, sock);
  const fdbAdded = await replaceFdb(putFdb, now.indexes, sock);
  changes.neighbours += neighAdded.written;
  changes.fdb += fdbAdded.written;
  throwIfFailed([...neighAdded.failed, ...fdbAdded.failed], putNeigh.length + putFdb.length, "neighbour and FDB writes");
  // Route changes and removals, then the FDB and neighbour removals.
  changes.routes += await reconcileRoutes(want.routes, sock, now.indexes);
  // A MAC written above has its new remote already (replace): its old one is gone with it.
  const rewritten = new Set(putFdb.map((f) => `${f.dev} ${f.mac}`));
  const staleFdb = [...haveFdb.values()].filter((f) => !wantFdb.has(fdbKey(f)) && !rewritten.has(`${f.dev} ${f.mac}`));
  const fdbRemoved = await deleteFdb(staleFdb, now.indexes, sock);
  changes.fdb += fdbRemoved.written;
  throwIfFailed(fdbRemoved.failed, staleFdb.length, "FDB removals");
  const staleNeigh = [...haveNeigh.values()].filter((n) => !wantNeigh.has(neighKey(n)));
  const neighRemoved = await deleteNeighbours(staleNeigh, now.indexes, sock);
  changes.neighbours += neighRemoved.written;
  throwIfFailed(neighRemoved.failed, staleNeigh.length, "neighbour removals");
  return changes;
}
