import { errnoSentence } from "../../lib/netlink/errno.ts";
import { AF_BRIDGE, dumpFdb, dumpNeighbours, encodeFdb, encodeNeigh, parseNeighbour } from "../../lib/netlink/neigh.ts";
import { NUD_PERMANENT } from "../../lib/netlink/rtnl.ts";
import type { FdbSpec, NeighSpec } from "./desired.ts";
import type { RtnlSocket } from "./netlink-socket.ts";
import type { Failed } from "./write-failures.ts";

// The VXLAN backend's permanent neighbour and FDB entries against the kernel
// over rtnetlink (the codec is lib/netlink/neigh.ts): read per device, then
// written as batches without ACK, like routes.ts. Only permanent entries
// are Twill's: the kernel's own (incomplete, reachable, stale) and learned
// ones are never read as Twill's, so never removed.

const ERRNO_ENOENT = 2;
const ERRNO_ENODEV = 19;

/** Permanent neighbour entries (with a MAC) on each device of `devs` (name → interface index). */
export async function permanentNeighbours(devs: ReadonlyMap<string, number>, sock: RtnlSocket): Promise<NeighSpec[]> {
  const out: NeighSpec[] = [];
  for (const [dev, index] of devs) {
    await sock.dump((seq) => dumpNeighbours(seq, index), `the neighbour entries of ${dev}`, (buf, m) => {
      const n = parseNeighbour(buf, m);
      if (n && n.family !== AF_BRIDGE && n.index === index && n.state & NUD_PERMANENT && n.dst && n.mac) out.push({ ip: n.dst, mac: n.mac, dev });
    });
  }
  return out;
}

/** Permanent FDB entries with a remote (dst) in each device's own table. */
export async function permanentFdb(devs: ReadonlyMap<string, number>, sock: RtnlSocket): Promise<FdbSpec[]> {
  const out: FdbSpec[] = [];
  for (const [dev, index] of devs) {
    await sock.dump((seq) => dumpFdb(seq, index), `the FDB entries of ${dev}`, (buf, m) => {
      const f = parseNeighbour(buf, m);
      if (f && f.family === AF_BRIDGE && f.index === index && f.state & NUD_PERMANENT && f.dst && f.mac) out.push({ mac: f.mac, dev, dst: f.dst });
    });
  }
  return out;
}

export interface Written {
  written: number;
  failed: Failed[];
}

/**
 * Sends one message per entry (`encode` writes it for the device's index);
 * an entry whose device does not exist fails unsent. A removal the kernel
 * answers with ENOENT found the entry gone already: not a failure.
 */
async function writeEach<T extends { dev: string }>(
  entries: T[],
  indexes: ReadonlyMap<string, number>,
  sock: RtnlSocket,
  what: string,
  removal: boolean,
  describe: (e: T) => string,
  encode: (buf: Uint8Array, off: number, seq: number, e: T, index: number) => number,
): Promise<Written> {
  const failed: Failed[] = [];
  const sendable: T[] = [];
  for (const e of entries) {
    if (indexes.has(e.dev)) sendable.push(e);
    else failed.push({ what: describe(e), why: errnoSentence(ERRNO_ENODEV) });
  }
  const refused = await sock.write(sendable.length, (i, seq, buf, off) => encode(buf, off, seq, sendable[i]!, indexes.get(sendable[i]!.dev)!), what);
  for (const f of refused) {
    if (removal && f.errno === ERRNO_ENOENT) continue;
    failed.push({ what: describe(sendable[f.index]!), why: errnoSentence(f.errno) });
  }
  return { written: sendable.length - refused.length, failed };
}

/** `ip neigh replace IP lladdr MAC dev DEV nud permanent` for each entry. */
export const replaceNeighbours = (entries: NeighSpec[], indexes: ReadonlyMap<string, number>, sock: RtnlSocket) =>
  writeEach(entries, indexes, sock, "neighbour writes", false, (n) => `neigh replace ${n.ip} lladdr ${n.mac} dev ${n.dev} nud permanent`, (buf, off, seq, n, index) =>
    encodeNeigh(buf, off, "replace", seq, { index, ip: n.ip, mac: n.mac }),
  );

/** `ip neigh del IP dev DEV` for each entry. */
export const deleteNeighbours = (entries: NeighSpec[], indexes: ReadonlyMap<string, number>, sock: RtnlSocket) =>
  writeEach(entries, indexes, sock, "neighbour removals", true, (n) => `neigh del ${n.ip} dev ${n.dev}`, (buf, off, seq, n, index) => encodeNeigh(buf, off, "delete", seq, { index, ip: n.ip }));

/** `bridge fdb replace MAC dev DEV dst DST self permanent` for each entry. */
export const replaceFdb = (entries: FdbSpec[], indexes: ReadonlyMap<string, number>, sock: RtnlSocket) =>
  writeEach(entries, indexes, sock, "FDB writes", false, (f) => `fdb replace ${f.mac} dev ${f.dev} dst ${f.dst} self permanent`, (buf, off, seq, f, index) =>
    encodeFdb(buf, off, "replace", seq, { index, mac: f.mac, dst: f.dst }),
  );

/** `bridge fdb del MAC dev DEV dst DST self` for each entry: only that remote of the MAC goes. */
export const deleteFdb = (entries: FdbSpec[], indexes: ReadonlyMap<string, number>, sock: RtnlSocket) =>
  writeEach(entries, indexes, sock, "FDB removals", true, (f) => `fdb del ${f.mac} dev ${f.dev} dst ${f.dst} self`, (buf, off, seq, f, index) =>
    encodeFdb(buf, off, "delete", seq, { index, mac: f.mac, dst: f.dst }),
  );
