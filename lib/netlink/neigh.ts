import { TwillError } from "../errors.ts";
import { formatAddress, formatMac, putAddressAttr } from "./address.ts";
import { AF, eachAttr, message, NLM_F, NUD_PERMANENT, readS32, readU16, RTM, type MessageHeader } from "./rtnl.ts";

// Neighbour and FDB entries as rtnetlink bytes (include/uapi/linux/
// neighbour.h): what `ip neigh replace|del|show` and `bridge fdb
// append|del|show` send and read. Pure, like rtnl.ts. Writes ask for no ACK
// (see routes.ts): the caller closes each batch with an ACK barrier.
//
// struct ndmsg { u8 family; u8 pad1; u16 pad2; s32 ifindex; u16 state; u8 flags; u8 type; }

const NDA = { DST: 1, LLADDR: 2, IFINDEX: 8 } as const;
export const AF_UNSPEC = 0;
export const AF_BRIDGE = 7;
/** ndm_flags: an entry of the device's own table (the VXLAN driver's FDB), not of a bridge it is a port of. */
export const NTF_SELF = 0x02;
const NDMSG = 12;
/** Bytes one neighbour or FDB message takes at most (IPv6 address, 6-byte MAC). */
export const MAX_NEIGH_MESSAGE = 16 + NDMSG + 20 + 12;

export interface NeighWrite {
  /** Interface index of the device. */
  index: number;
  ip: string;
  /** Link-layer address; not needed to delete. */
  mac?: string;
}

export interface FdbWrite {
  index: number;
  mac: string;
  /** The remote VTEP's address. */
  dst: string;
}

/** Writes "aa:bb:cc:dd:ee:ff" as 6 bytes at buf[at]; throws on anything else (the entry would be wrong, not refused). */
function putMac(text: string, buf: Uint8Array, at: number): void {
  const ok = text.length === 17 && /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(text);
  if (!ok) throw new TwillError("MAC_INVALID", `"${text}" is not a MAC address`);
  for (let i = 0; i < 6; i++) buf[at + i] = parseInt(text.slice(i * 3, i * 3 + 2), 16);
}

function putHeader(buf: Uint8Array, dv: DataView, off: number, type: number, flags: number, seq: number): void {
  buf.fill(0, off, off + 16 + NDMSG);
  dv.setUint16(off + 4, type, true);
  dv.setUint16(off + 6, flags, true);
  dv.setUint32(off + 8, seq, true);
}

function putMacAttr(buf: Uint8Array, dv: DataView, off: number, mac: string): number {
  buf.fill(0, off, off + 12);
  dv.setUint16(off, 4 + 6, true);
  dv.setUint16(off + 2, NDA.LLADDR, true);
  putMac(mac, buf, off + 4);
  return off + 12;
}

/**
 * Encodes `ip neigh replace IP lladdr MAC dev INDEX nud permanent` (create
 * or overwrite) or `ip neigh del IP dev INDEX` into buf at off (buf needs
 * MAX_NEIGH_MESSAGE bytes free there); returns the offset after it.
 */
export function encodeNeigh(buf: Uint8Array, off: number, op: "replace" | "delete", seq: number, n: NeighWrite): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const start = off;
  putHeader(buf, dv, off, op === "replace" ? RTM.NEWNEIGH : RTM.DELNEIGH, op === "replace" ? NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE : NLM_F.REQUEST, seq);
  const ndm = off + 16;
  dv.setInt32(ndm + 4, n.index, true);
  if (op === "replace") dv.setUint16(ndm + 8, NUD_PERMANENT, true);
  off = ndm + NDMSG;
  const len = putAddressAttr(buf, dv, off, NDA.DST, n.ip, n.ip.length);
  buf[ndm] = len === 4 ? AF.INET : AF.INET6;
  off += 4 + len;
  if (op === "replace") {
    if (!n.mac) throw new TwillError("MAC_INVALID", `a neighbour entry for ${n.ip} needs a MAC address`);
    off = putMacAttr(buf, dv, off, n.mac);
  }
  dv.setUint32(start, off - start, true);
  return off;
}

/**
 * Encodes `bridge fdb replace MAC dev INDEX dst DST self permanent` (the
 * MAC's remote becomes DST: a VXLAN device keeps one remote per unicast MAC
 * and ignores an append to it, so a peer whose underlay address moved needs
 * replace) or `bridge fdb del MAC dev INDEX dst DST self` (removes only that
 * remote) into buf at off; returns the offset after it.
 */
export function encodeFdb(buf: Uint8Array, off: number, op: "replace" | "delete", seq: number, f: FdbWrite): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const start = off;
  putHeader(buf, dv, off, op === "replace" ? RTM.NEWNEIGH : RTM.DELNEIGH, op === "replace" ? NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE : NLM_F.REQUEST, seq);
  const ndm = off + 16;
  buf[ndm] = AF_BRIDGE;
  dv.setInt32(ndm + 4, f.index, true);
  dv.setUint16(ndm + 8, NUD_PERMANENT, true);
  buf[ndm + 10] = NTF_SELF;
  off = putMacAttr(buf, dv, ndm + NDMSG, f.mac);
  off += 4 + putAddressAttr(buf, dv, off, NDA.DST, f.dst, f.dst.length);
  dv.setUint32(start, off - start, true);
  return off;
}

function single(encode: (buf: Uint8Array) => number): Uint8Array {
  const buf = new Uint8Array(MAX_NEIGH_MESSAGE);
  return buf.slice(0, encode(buf));
}

export const replaceNeighbour = (seq: number, n: NeighWrite) => single((b) => encodeNeigh(b, 0, "replace", seq, n));
export const deleteNeighbour = (seq: number, n: NeighWrite) => single((b) => encodeNeigh(b, 0, "delete", seq, n));
export const replaceFdb = (seq: number, f: FdbWrite) => single((b) => encodeFdb(b, 0, "replace", seq, f));
export const deleteFdb = (seq: number, f: FdbWrite) => single((b) => encodeFdb(b, 0, "delete", seq, f));

/**
 * `ip neigh show dev INDEX`: both families' tables (AF_UNSPEC), filtered by
 * the kernel through NDA_IFINDEX (neigh_valid_dump_req; ndm_ifindex must stay
 * 0, strict checking refuses it). A kernel that ignores the attribute sends
 * every device's entries: the caller checks the index of each.
 */
export function dumpNeighbours(seq: number, index: number): Uint8Array {
  const body = new Uint8Array(NDMSG + 8);
  const dv = new DataView(body.buffer);
  body[0] = AF_UNSPEC;
  dv.setUint16(NDMSG, 8, true);
  dv.setUint16(NDMSG + 2, NDA.IFINDEX, true);
  dv.setUint32(NDMSG + 4, index, true);
  return message(RTM.GETNEIGH, NLM_F.REQUEST | NLM_F.DUMP, seq, body);
}

/**
 * `bridge fdb show dev INDEX`. The daemon's socket does not set
 * NETLINK_GET_STRICT_CHK, so the kernel reads the request as iproute2 sends
 * it: a 16-byte ifinfomsg whose ifi_index names the device
 * (valid_fdb_dump_legacy; a 12- or 20-byte ndmsg there would mean "every
 * device"). The caller checks the index of each entry as well.
 */
export function dumpFdb(seq: number, index: number): Uint8Array {
  const body = new Uint8Array(16);
  body[0] = AF_BRIDGE;
  new DataView(body.buffer).setInt32(4, index, true);
  return message(RTM.GETNEIGH, NLM_F.REQUEST | NLM_F.DUMP, seq, body);
}

export interface DumpedNeighbour {
  /** AF.INET / AF.INET6 for a neighbour, AF_BRIDGE for an FDB entry. */
  family: number;
  index: number;
  /** NUD_* bits. */
  state: number;
  /** NTF_* bits. */
  flags: number;
  /** NDA_DST: the neighbour's address, or an FDB entry's remote VTEP; "" when absent. */
  dst: string;
  /** NDA_LLADDR as "aa:bb:…"; "" when absent (an incomplete neighbour). */
  mac: string;
}

const malformed = (why: string) => new TwillError("KERNEL_READ", `a neighbour or FDB entry from the kernel is malformed: ${why}`);

/** An RTM_NEWNEIGH message of a dump, or undefined for other messages; throws a KERNEL_READ TwillError for one that does not hold together. */
export function parseNeighbour(buf: Uint8Array, m: MessageHeader): DumpedNeighbour | undefined {
  if (m.type !== RTM.NEWNEIGH) return undefined;
  const end = m.offset + m.length;
  if (m.length < 16 + NDMSG) throw malformed(`a message of ${m.length} bytes is shorter than its header`);
  if (end > buf.length) throw malformed(`a message of ${m.length} bytes runs past the end of its datagram`);
  const ndm = m.offset + 16;
  const out: DumpedNeighbour = { family: buf[ndm]!, index: readS32(buf, ndm + 4), state: readU16(buf, ndm + 8), flags: buf[ndm + 10]!, dst: "", mac: "" };
  eachAttr(buf, ndm + NDMSG, end, malformed, (type, at, len) => {
    if (type === NDA.DST) {
      if (len !== 4 && len !== 16) throw malformed(`an address of ${len} bytes`);
      out.dst = formatAddress(len === 4 ? AF.INET : AF.INET6, buf, at);
    } else if (type === NDA.LLADDR) out.mac = formatMac(buf, at, len);
  });
  return out;
}
