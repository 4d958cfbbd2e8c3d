import { AF, ipBytes, message, NLM_F, RT_TABLE_MAIN, RTM, RTN_UNICAST, type MessageHeader } from "./rtnl.ts";

// Route writes, dumps and the routes a dump returns, as rtnetlink bytes
// (include/uapi/linux/rtnetlink.h): what `ip route replace|del|show` send and
// read. Pure, like rtnl.ts. Writes ask for no ACK: the kernel still answers a
// failed message with an NLMSG_ERROR carrying its sequence number, so a batch
// of 100,000 routes comes back as its failures only, and the caller ends each
// batch with an ACK barrier (rtnl.ts) to know it has all of them.

const RTA = { DST: 1, OIF: 4, GATEWAY: 5, TABLE: 15 } as const;
export const RTN_BLACKHOLE = 6;
/** rtm_flags: the next hop is on the link even if no address says so (`ip route ... onlink`). */
export const RTNH_F_ONLINK = 4;
/** What `ip route del` puts in rtm_scope: match a route of any scope. */
const RT_SCOPE_NOWHERE = 255;

export interface RouteWrite {
  /** CIDR. */
  dst: string;
  /** Next hop; absent for a blackhole or a device route. */
  gateway?: string;
  /** Output interface index; absent for a blackhole. */
  oif?: number;
  protocol: number;
  blackhole?: boolean;
  onlink?: boolean;
}

/** Bytes one route message takes at most (IPv6, every attribute): room to leave before encoding one. */
export const MAX_ROUTE_MESSAGE = 16 + 12 + 20 + 8 + 20;

/** Writes dotted-quad IPv4 text[start, end) at buf[at]; false when it is not one (then it is IPv6, or invalid). */
function putIPv4(text: string, start: number, end: number, buf: Uint8Array, at: number): boolean {
  let octet = 0;
  let digits = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || n === 3) return false;
      buf[at + n++] = octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return false;
    } else return false;
  }
  if (digits === 0 || n !== 3) return false;
  buf[at + 3] = octet;
  return true;
}

/** Writes an address as an rtattr at buf[off]; returns its length in bytes (4 or 16). */
function putAddressAttr(buf: Uint8Array, dv: DataView, off: number, type: number, text: string, end: number): number {
  let len = 4;
  if (!putIPv4(text, 0, end, buf, off + 4)) {
    const { bytes } = ipBytes(text.slice(0, end));
    buf.set(bytes, off + 4);
    len = bytes.length;
  }
  dv.setUint16(off, 4 + len, true);
  dv.setUint16(off + 2, type, true);
  return len;
}

/**
 * Encodes one route message into buf at off (buf needs MAX_ROUTE_MESSAGE
 * bytes free there) and returns the offset after it. Written in place: the
 * daemon encodes batches of up to 100,000s, and a message object per route
 * (with its attributes) cost more than the kernel's work.
 */
export function encodeRoute(buf: Uint8Array, off: number, op: "replace" | "delete", seq: number, r: RouteWrite): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const start = off;
  buf.fill(0, off, off + 28);
  dv.setUint16(off + 4, op === "replace" ? RTM.NEWROUTE : RTM.DELROUTE, true);
  dv.setUint16(off + 6, op === "replace" ? NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE : NLM_F.REQUEST, true);
  dv.setUint32(off + 8, seq, true);
  const rtm = off + 16;
  buf[rtm + 4] = RT_TABLE_MAIN;
  buf[rtm + 5] = r.protocol;
  buf[rtm + 6] = op === "replace" ? 0 /* universe */ : RT_SCOPE_NOWHERE;
  buf[rtm + 7] = r.blackhole ? RTN_BLACKHOLE : RTN_UNICAST;
  if (op === "replace" && r.onlink) dv.setUint32(rtm + 8, RTNH_F_ONLINK, true);
  off = rtm + 12;
  const slash = r.dst.indexOf("/");
  const addrEnd = slash < 0 ? r.dst.length : slash;
  const len = putAddressAttr(buf, dv, off, RTA.DST, r.dst, addrEnd);
  const prefix = slash < 0 ? len * 8 : Number(r.dst.slice(slash + 1));
  buf[rtm] = len === 4 ? AF.INET : AF.INET6;
  buf[rtm + 1] = prefix;
  // A default route carries no RTA_DST.
  if (prefix > 0) off += 4 + len;
  if (op === "replace" && r.oif !== undefined) {
    dv.setUint16(off, 8, true);
    dv.setUint16(off + 2, RTA.OIF, true);
    dv.setUint32(off + 4, r.oif, true);
    off += 8;
  }
  if (op === "replace" && r.gateway) off += 4 + putAddressAttr(buf, dv, off, RTA.GATEWAY, r.gateway, r.gateway.length);
  dv.setUint32(start, off - start, true);
  return off;
}

function single(op: "replace" | "delete", seq: number, r: RouteWrite): Uint8Array {
  const buf = new Uint8Array(MAX_ROUTE_MESSAGE);
  return buf.slice(0, encodeRoute(buf, 0, op, seq, r));
}

/** `ip route replace` (create or overwrite), no ACK: only a failure is answered. */
export const replaceRoute = (seq: number, r: RouteWrite) => single("replace", seq, r);

/** `ip route del DST [type] proto P`: the kernel matches protocol and type, so only that route goes. No ACK. */
export const deleteRoute = (seq: number, r: RouteWrite) => single("delete", seq, r);

/** `ip route show` for one family (AF.INET / AF.INET6), every table: filter the answer with parseRoute. */
export function dumpRoutes(seq: number, family: number): Uint8Array {
  const body = new Uint8Array(12);
  body[0] = family;
  return message(RTM.GETROUTE, NLM_F.REQUEST | NLM_F.DUMP, seq, body);
}

export interface DumpedRoute {
  dst: string;
  gateway: string;
  oif: number;
  table: number;
  protocol: number;
  blackhole: boolean;
  onlink: boolean;
}

function formatAddress(family: number, b: Uint8Array, off: number): string {
  if (family === AF.INET) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16));
  // The canonical form (RFC 5952): the longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) (best = i), (bestLen = j - i);
    i = j > i ? j : i + 1;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/**
 * An RTM_NEWROUTE message of a dump, or undefined for other messages. Only
 * protocol `onlyProtocol` is decoded further when given (a node's table
 * holds many routes that are not the caller's: skipping them is most of a
 * dump's cost).
 */
export function parseRoute(buf: Uint8Array, m: MessageHeader, onlyProtocol?: number): DumpedRoute | undefined {
  if (m.type !== RTM.NEWROUTE || m.length < 28) return undefined;
  const base = m.offset + 16;
  const protocol = buf[base + 5]!;
  if (onlyProtocol !== undefined && protocol !== onlyProtocol) return undefined;
  const dv = new DataView(buf.buffer, buf.byteOffset);
  const family = buf[base]!;
  const prefix = buf[base + 1]!;
  let table = buf[base + 4]!;
  let dst = family === AF.INET ? "0.0.0.0" : "::";
  let gateway = "";
  let oif = 0;
  for (let off = base + 12; off + 4 <= m.offset + m.length; ) {
    const len = dv.getUint16(off, true);
    if (len < 4) break;
    const type = dv.getUint16(off + 2, true);
    if (type === RTA.DST) dst = formatAddress(family, buf, off + 4);
    else if (type === RTA.GATEWAY) gateway = formatAddress(family, buf, off + 4);
    else if (type === RTA.OIF) oif = dv.getUint32(off + 4, true);
    else if (type === RTA.TABLE) table = dv.getUint32(off + 4, true);
    off += (len + 3) & ~3;
  }
  return {
    dst: `${dst}/${prefix}`,
    gateway,
    oif,
    table,
    protocol,
    blackhole: buf[base + 7] === RTN_BLACKHOLE,
    onlink: (dv.getUint32(base + 8, true) & RTNH_F_ONLINK) !== 0,
  };
}
