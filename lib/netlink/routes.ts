import { TwillError } from "../errors.ts";
import { formatAddress, putAddressAttr } from "./address.ts";
import { AF, eachAttr, familyDump, NLM_F, readU32, RT_TABLE_MAIN, RTM, RTN_UNICAST, type MessageHeader } from "./rtnl.ts";

// Route writes, dumps and the routes a dump returns, as rtnetlink bytes
// (include/uapi/linux/rtnetlink.h): what `ip route replace|del|show` send and
// read. Pure, like rtnl.ts. Writes ask for no ACK: the kernel still answers a
// failed message with an NLMSG_ERROR carrying its sequence number, so a batch
// of 100,000 routes comes back as its failures only, and the caller ends each
// batch with an ACK barrier (rtnl.ts) to know it has all of them.

const RTA = { DST: 1, OIF: 4, GATEWAY: 5, TABLE: 15 } as const;
/** sizeof(struct rtmsg). */
const RTMSG = 12;
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
export const dumpRoutes = (seq: number, family: number): Uint8Array => familyDump(RTM.GETROUTE, RTMSG, family, seq);

export interface DumpedRoute {
  dst: string;
  gateway: string;
  oif: number;
  table: number;
  protocol: number;
  blackhole: boolean;
  onlink: boolean;
}

const malformed = (why: string) => new TwillError("KERNEL_READ", `a route from the kernel is malformed: ${why}`);

/**
 * An RTM_NEWROUTE message of a dump, or undefined for other messages. Only
 * protocol `onlyProtocol` is decoded further when given (a node's table
 * holds many routes that are not the caller's: skipping them is most of a
 * dump's cost). Throws a KERNEL_READ TwillError for one that does not hold together.
 */
export function parseRoute(buf: Uint8Array, m: MessageHeader, onlyProtocol?: number): DumpedRoute | undefined {
  if (m.type !== RTM.NEWROUTE) return undefined;
  const end = m.offset + m.length;
  if (m.length < 16 + RTMSG) throw malformed(`a message of ${m.length} bytes is shorter than its header`);
  if (end > buf.length) throw malformed(`a message of ${m.length} bytes runs past the end of its datagram`);
  const base = m.offset + 16;
  const protocol = buf[base + 5]!;
  if (onlyProtocol !== undefined && protocol !== onlyProtocol) return undefined;
  const family = buf[base]!;
  const addressLength = family === AF.INET ? 4 : 16;
  const out: DumpedRoute = {
    dst: "",
    gateway: "",
    oif: 0,
    table: buf[base + 4]!,
    protocol,
    blackhole: buf[base + 7] === RTN_BLACKHOLE,
    onlink: (readU32(buf, base + 8) & RTNH_F_ONLINK) !== 0,
  };
  let dst = family === AF.INET ? "0.0.0.0" : "::";
  eachAttr(buf, base + RTMSG, end, malformed, (type, at, len) => {
    if (type === RTA.DST || type === RTA.GATEWAY) {
      if (len !== addressLength) throw malformed(`an address of ${len} bytes in a family ${family} route`);
      if (type === RTA.DST) dst = formatAddress(family, buf, at);
      else out.gateway = formatAddress(family, buf, at);
    } else if (type === RTA.OIF || type === RTA.TABLE) {
      if (len !== 4) throw malformed(`attribute ${type} of ${len} bytes where 4 belong`);
      if (type === RTA.OIF) out.oif = readU32(buf, at);
      else out.table = readU32(buf, at);
    }
  });
  out.dst = `${dst}/${buf[base + 1]!}`;
  return out;
}
