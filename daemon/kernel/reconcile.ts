import type { DesiredState, FdbSpec, NeighSpec, VxlanLink } from "./desired.ts";
import { batch, readJson } from "./ip.ts";
import { reconcileRoutes } from "./routes.ts";

// Desired kernel state against the kernel: read, diff, apply only the
// difference (STYLE.md §2). Twill owns its VXLAN device by name and its routes
// by protocol number; nothing else is read or touched. Additions go in the
// order neighbour → FDB → route (route last, so the kernel never has to ARP for
// a next hop), removals in the reverse order. Routes, the one kind that
// counts in the 100,000s (bgp), go over rtnetlink (routes.ts); the few
// devices, neighbours and FDB entries through `ip` / `bridge`.

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
interface KNeigh {
  dst: string;
  lladdr?: string;
  state?: string[];
}
interface KFdb {
  mac: string;
  dst?: string;
  state?: string;
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

async function currentNeighbours(devs: string[]): Promise<NeighSpec[]> {
  const out: NeighSpec[] = [];
  for (const dev of devs) {
    for (const n of await readJson<KNeigh>(["ip", "-j", "neigh", "show", "dev", dev, "nud", "permanent"])) {
      if (n.lladdr) out.push({ ip: n.dst, mac: n.lladdr, dev });
    }
  }
  return out;
}

async function currentFdb(devs: string[]): Promise<FdbSpec[]> {
  const out: FdbSpec[] = [];
  for (const dev of devs) {
    for (const f of await readJson<KFdb>(["bridge", "-j", "fdb", "show", "dev", dev])) {
      if (f.dst && f.state === "permanent") out.push({ mac: f.mac, dev, dst: f.dst });
    }
  }
  return out;
}


const neighKey = (n: NeighSpec) => `${n.dev} ${n.ip}`;
const fdbKey = (f: FdbSpec) => `${f.dev} ${f.mac} ${f.dst}`;

export async function reconcile(want: DesiredState): Promise<Changes> {
  const changes: Changes = { links: 0, neighbours: 0, fdb: 0, routes: 0 };
  const devs = want.links.map((l) => l.name);
  const readEntries = () => Promise.all([currentNeighbours(devs), currentFdb(devs)]);
  // Reads, and the neighbour and FDB writes, are independent of each other: in
  // parallel (each `ip`/`bridge` process costs 20–50 ms to start here). The
  // entries are read beside the links and read again if a device was changed.
  const early = readEntries();
  early.catch(() => {});
  changes.links = await reconcileLinks(want.links);

  const [neighNow, fdbNow] = changes.links > 0 ? await readEntries() : await early;
  const haveNeigh = new Map(neighNow.map((n) => [neighKey(n), n]));
  const haveFdb = new Map(fdbNow.map((f) => [fdbKey(f), f]));
  const wantNeigh = new Map(want.neighbours.map((n) => [neighKey(n), n]));
  const wantFdb = new Map(want.fdb.map((f) => [fdbKey(f), f]));

  // Additions and changes: neighbour, FDB, then route.
  const [neighAdded, fdbAdded] = await Promise.all([
    batch("ip", want.neighbours.filter((n) => haveNeigh.get(neighKey(n))?.mac !== n.mac).map((n) => `neigh replace ${n.ip} lladdr ${n.mac} dev ${n.dev} nud permanent`)),
    batch("bridge", want.fdb.filter((f) => !haveFdb.has(fdbKey(f))).map((f) => `fdb append ${f.mac} dev ${f.dev} dst ${f.dst} self permanent`)),
  ]);
  changes.neighbours += neighAdded;
  changes.fdb += fdbAdded;
  // Route changes and removals, then the FDB and neighbour removals.
  changes.routes += await reconcileRoutes(want.routes);
  changes.fdb += await batch(
    "bridge",
    [...haveFdb.values()].filter((f) => !wantFdb.has(fdbKey(f))).map((f) => `fdb del ${f.mac} dev ${f.dev} dst ${f.dst} self`),
  );
  changes.neighbours += await batch(
    "ip",
    [...haveNeigh.values()].filter((n) => !wantNeigh.has(neighKey(n))).map((n) => `neigh del ${n.ip} dev ${n.dev}`),
  );
  return changes;
}
