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

function split(dst: string): { family: number; bytes: Uint8Array; prefix: number } {
  const slash = dst.indexOf("/");
  const { family, bytes } = ipBytes(slash < 0 ? dst : dst.slice(0, slash));
  return { family, bytes, prefix: slash < 0 ? bytes.length * 8 : Number(dst.slice(slash + 1)) };
}

/** One message laid out in a single buffer: rtmsg, then DST / OIF / GATEWAY as present. */
function routeMessage(type: number, flags: number, seq: number, r: RouteWrite, scope: number): Uint8Array {
  const { family, bytes, prefix } = split(r.dst);
  const gw = r.gateway ? ipBytes(r.gateway).bytes : undefined;
  const attrLen = (n: number) => 4 + ((n + 3) & ~3);
  const size = 12 + (prefix > 0 ? attrLen(bytes.length) : 0) + (r.oif !== undefined ? attrLen(4) : 0) + (gw ? attrLen(gw.length) : 0);
  const body = new Uint8Array(size);
  const dv = new DataView(body.buffer);
  body[0] = family;
  body[1] = prefix;
  body[4] = RT_TABLE_MAIN;
  body[5] = r.protocol;
  body[6] = scope;
  body[7] = r.blackhole ? RTN_BLACKHOLE : RTN_UNICAST;
  dv.setUint32(8, r.onlink ? RTNH_F_ONLINK : 0, true);
  let off = 12;
  const put = (attrType: number, payload: Uint8Array) => {
    dv.setUint16(off, 4 + payload.length, true);
    dv.setUint16(off + 2, attrType, true);
    body.set(payload, off + 4);
    off += attrLen(payload.length);
  };
  if (prefix > 0) put(RTA.DST, bytes);
  if (r.oif !== undefined) {
    const oif = new Uint8Array(4);
    new DataView(oif.buffer).setUint32(0, r.oif, true);
    put(RTA.OIF, oif);
  }
  if (gw) put(RTA.GATEWAY, gw);
  return message(type, flags, seq, body);
}

/** `ip route replace` (create or overwrite), no ACK: only a failure is answered. */
export const replaceRoute = (seq: number, r: RouteWrite) =>
  routeMessage(RTM.NEWROUTE, NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE, seq, r, 0 /* universe */);

/** `ip route del DST [type] proto P`: the kernel matches protocol and type, so only that route goes. No ACK. */
export const deleteRoute = (seq: number, r: RouteWrite) =>
  routeMessage(RTM.DELROUTE, NLM_F.REQUEST, seq, { dst: r.dst, protocol: r.protocol, ...(r.blackhole ? { blackhole: true } : {}) }, RT_SCOPE_NOWHERE);

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
