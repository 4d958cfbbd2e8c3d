import { parseIp } from "../net/cidr.ts";

// rtnetlink requests, built as bytes (RFC 3549; include/uapi/linux/
// {netlink,rtnetlink,if_link,if_addr,neighbour,veth}.h). Pure: no socket
// here, so it is tested anywhere; the CNI binary sends them through Bun's FFI
// (cni/attach/), the daemon through the `netlink` addon (daemon/kernel/).
// Route writes, dumps and their replies are in routes.ts beside this file.

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  NEWADDR: 20,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
} as const;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
/** DUMP (ROOT | MATCH) shares bits with REPLACE / EXCL: they mean one thing on GET requests, the other on NEW. */
export const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400, DUMP: 0x300 } as const;
/** Link attributes (include/uapi/linux/if_link.h), for requests here and replies in link.ts. */
export const IFLA = {
  ADDRESS: 1, IFNAME: 3, MTU: 4, LINKINFO: 18, IFALIAS: 20, NET_NS_FD: 28,
  GSO_MAX_SIZE: 41, GRO_MAX_SIZE: 58, GSO_IPV4_MAX_SIZE: 63, GRO_IPV4_MAX_SIZE: 64,
} as const;
export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const NLA_F_NESTED = 0x8000;
const IFA = { ADDRESS: 1, LOCAL: 2, FLAGS: 8 } as const;
const IFA_F_NODAD = 0x02;
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6 } as const;
const NDA = { DST: 1, LLADDR: 2 } as const;
export const IFF_UP = 0x1;
export const NUD_PERMANENT = 0x80;
export const RT_TABLE_MAIN = 254;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253 } as const;
export const RTN_UNICAST = 1;
/** What `ip route add` stamps when no protocol is given. */
export const RTPROT_BOOT = 3;
export const AF = { INET: 2, INET6: 10 } as const;

type Bytes = Uint8Array;

/** One buffer holding `parts` in order (always a new buffer). */
export function concat(parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const align4 = (n: number) => (n + 3) & ~3;

function attr(type: number, payload: Bytes): Bytes {
  const len = 4 + payload.length;
  const out = new Uint8Array(align4(len));
  const dv = new DataView(out.buffer);
  dv.setUint16(0, len, true);
  dv.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

const nested = (type: number, ...children: Bytes[]) => attr(type | NLA_F_NESTED, concat(children));
const cstr = (s: string) => concat([new TextEncoder().encode(s), new Uint8Array(1)]);

function u32(v: number): Bytes {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

export function macBytes(mac: string): Bytes {
  return Uint8Array.from(mac.split(":").map((h) => parseInt(h, 16)));
}

export function ipBytes(ip: string): { family: number; bytes: Bytes } {
  const { family, value } = parseIp(ip);
  const n = family === 4 ? 4 : 16;
  const bytes = new Uint8Array(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return { family: family === 4 ? AF.INET : AF.INET6, bytes };
}

function ifinfomsg(o: { index?: number; flags?: number; change?: number } = {}): Bytes {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setInt32(4, o.index ?? 0, true);
  dv.setUint32(8, o.flags ?? 0, true);
  dv.setUint32(12, o.change ?? 0, true);
  return b;
}

/** Wraps a payload in an nlmsghdr. */
export function message(type: number, flags: number, seq: number, payload: Bytes): Bytes {
  const out = new Uint8Array(16 + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, out.length, true);
  dv.setUint16(4, type, true);
  dv.setUint16(6, flags, true);
  dv.setUint32(8, seq, true);
  out.set(payload, 16);
  return out;
}

const CREATE_EXCL = NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL;
const CREATE_REPLACE = NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE;

/**
 * BIG TCP: the largest GSO packet a device builds or passes on without
 * cutting it up, and the largest GRO builds, per family (the kernel keeps
 * IPv6's in the family-less gso_max_size; IPv4's since Linux 6.3).
 */
export interface GsoSizes {
  ipv4: number;
  ipv6: number;
}

/** Above this a packet is BIG TCP (GSO_LEGACY_MAX_SIZE): every device before 6.3 and every default stops here. */
export const GSO_LEGACY_MAX_SIZE = 65536;
/** GSO_MAX_SIZE: no device takes more. */
export const GSO_MAX_SIZE = 524280;

/** Applied in this order by the kernel whatever the order here: gso_max_size first (below 64 KiB it sets IPv4's too), then IPv4's. */
const gsoAttrs = (g: GsoSizes | undefined): Bytes[] =>
  g
    ? [attr(IFLA.GSO_MAX_SIZE, u32(g.ipv6)), attr(IFLA.GRO_MAX_SIZE, u32(g.ipv6)), attr(IFLA.GSO_IPV4_MAX_SIZE, u32(g.ipv4)), attr(IFLA.GRO_IPV4_MAX_SIZE, u32(g.ipv4))]
    : [];

export interface VethSpec {
  name: string;
  mac: string;
  mtu: number;
  peerName: string;
  peerMac: string;
  /** An open fd of the namespace the peer end is created in. */
  peerNetnsFd: number;
  /** BIG TCP sizes for this end and for the peer end; absent: the kernel's 64 KiB. */
  gso?: GsoSizes;
  peerGso?: GsoSizes;
}

/** `ip link add NAME mtu M address MAC type veth peer name P mtu M address PMAC netns FD` */
export function newVeth(seq: number, v: VethSpec): Bytes {
  const peer = concat([
    ifinfomsg(),
    attr(IFLA.IFNAME, cstr(v.peerName)),
    attr(IFLA.MTU, u32(v.mtu)),
    attr(IFLA.ADDRESS, macBytes(v.peerMac)),
    attr(IFLA.NET_NS_FD, u32(v.peerNetnsFd)),
    ...gsoAttrs(v.peerGso),
  ]);
  const linkinfo = nested(IFLA.LINKINFO, attr(IFLA_INFO.KIND, cstr("veth")), nested(IFLA_INFO.DATA, attr(VETH_INFO_PEER, peer)));
  const body = concat([ifinfomsg(), attr(IFLA.IFNAME, cstr(v.name)), attr(IFLA.MTU, u32(v.mtu)), attr(IFLA.ADDRESS, macBytes(v.mac)), ...gsoAttrs(v.gso), linkinfo]);
  return message(RTM.NEWLINK, CREATE_EXCL, seq, body);
}

/** `ip link set NAME gso_max_size … gro_max_size … gso_ipv4_max_size … gro_ipv4_max_size …` */
export function setLinkGso(seq: number, name: string, g: GsoSizes): Bytes {
  return message(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK, seq, concat([ifinfomsg(), attr(IFLA.IFNAME, cstr(name)), ...gsoAttrs(g)]));
}

/** Sets a link up (and its alias). */
export function setLinkUp(seq: number, index: number, alias?: string): Bytes {
  const body = concat([ifinfomsg({ index, flags: IFF_UP, change: IFF_UP }), ...(alias ? [attr(IFLA.IFALIAS, cstr(alias))] : [])]);
  return message(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK, seq, body);
}

export function getLinkByName(seq: number, name: string): Bytes {
  return message(RTM.GETLINK, NLM_F.REQUEST, seq, concat([ifinfomsg(), attr(IFLA.IFNAME, cstr(name))]));
}

export function delLinkByName(seq: number, name: string): Bytes {
  return message(RTM.DELLINK, NLM_F.REQUEST | NLM_F.ACK, seq, concat([ifinfomsg(), attr(IFLA.IFNAME, cstr(name))]));
}

/** `ip addr add IP/PLEN dev INDEX [nodad]` */
export function newAddr(seq: number, index: number, ip: string, prefixLen: number): Bytes {
  const { family, bytes } = ipBytes(ip);
  const hdr = new Uint8Array(8);
  const dv = new DataView(hdr.buffer);
  hdr[0] = family;
  hdr[1] = prefixLen;
  dv.setUint32(4, index, true);
  const attrs = [attr(IFA.LOCAL, bytes), attr(IFA.ADDRESS, bytes)];
  // IPv6: no duplicate address detection, or the address is unusable for a second.
  if (family === AF.INET6) attrs.push(attr(IFA.FLAGS, u32(IFA_F_NODAD)));
  return message(RTM.NEWADDR, CREATE_EXCL, seq, concat([hdr, ...attrs]));
}

export interface RouteSpec {
  /** CIDR, e.g. "10.1.2.3/32" or "0.0.0.0/0". */
  dst: string;
  gateway?: string;
  oif: number;
  protocol: number;
  scope: number;
  /** The route's metric; absent: 0. */
  priority?: number;
}

/** `ip route add DST [via GW] dev OIF proto P scope S [metric M]` (fails with EEXIST when present). */
export function newRoute(seq: number, r: RouteSpec): Bytes {
  const [addr = "", plen = "0"] = r.dst.split("/");
  const { family, bytes } = ipBytes(addr);
  const hdr = new Uint8Array(12);
  hdr[0] = family;
  hdr[1] = Number(plen);
  hdr[4] = RT_TABLE_MAIN;
  hdr[5] = r.protocol;
  hdr[6] = r.scope;
  hdr[7] = RTN_UNICAST;
  const attrs = [...(Number(plen) > 0 ? [attr(RTA.DST, bytes)] : []), attr(RTA.OIF, u32(r.oif))];
  if (r.gateway) attrs.push(attr(RTA.GATEWAY, ipBytes(r.gateway).bytes));
  if (r.priority) attrs.push(attr(RTA.PRIORITY, u32(r.priority)));
  return message(RTM.NEWROUTE, CREATE_EXCL, seq, concat([hdr, ...attrs]));
}

/** `ip neigh replace IP lladdr MAC dev INDEX nud permanent` */
export function replaceNeigh(seq: number, index: number, ip: string, mac: string): Bytes {
  const { family, bytes } = ipBytes(ip);
  const hdr = new Uint8Array(12);
  const dv = new DataView(hdr.buffer);
  hdr[0] = family;
  dv.setInt32(4, index, true);
  dv.setUint16(8, NUD_PERMANENT, true);
  return message(RTM.NEWNEIGH, CREATE_REPLACE, seq, concat([hdr, attr(NDA.DST, bytes), attr(NDA.LLADDR, macBytes(mac))]));
}

export interface MessageHeader {
  type: number;
  flags: number;
  seq: number;
  /** Where the message starts in the buffer, and its length (header included). */
  offset: number;
  length: number;
}

/** Every netlink message in a received datagram (a dump part or a batch of errors holds many). */
export function parseMessages(buf: Bytes, length = buf.length): MessageHeader[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, length);
  const out: MessageHeader[] = [];
  for (let off = 0; off + 16 <= length; ) {
    const len = dv.getUint32(off, true);
    if (len < 16 || off + len > length) break;
    out.push({ type: dv.getUint16(off + 4, true), flags: dv.getUint16(off + 6, true), seq: dv.getUint32(off + 8, true), offset: off, length: len });
    off += align4(len);
  }
  return out;
}

// Netlink is host-endian; Twill runs on little-endian hosts (the DataView
// reads here say so too). Plain byte reads for replies read by the 10,000.
export const readU16 = (b: Bytes, at: number) => b[at]! | (b[at + 1]! << 8);
export const readS32 = (b: Bytes, at: number) => b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
export const readU32 = (b: Bytes, at: number) => readS32(b, at) >>> 0;

/**
 * Calls `visit` for each rtattr in b[start, end) with its type (flags
 * masked off) and payload; an attribute that claims more bytes than are left
 * is reported through `fail` (whose error is thrown), never read past.
 */
export function eachAttr(b: Bytes, start: number, end: number, fail: (why: string) => Error, visit: (type: number, at: number, len: number) => void): void {
  for (let off = start; off + 4 <= end; ) {
    const len = readU16(b, off);
    const type = readU16(b, off + 2) & 0x3fff;
    if (len < 4 || off + len > end) throw fail(`attribute ${type} of ${len} bytes runs past the end of the ${end - start} bytes that hold it`);
    visit(type, off + 4, len - 4);
    off += (len + 3) & ~3;
  }
}

/** A dump request whose fixed header (`headerLength` bytes) names only the address family, as `ip route|addr show` send. */
export function familyDump(type: number, headerLength: number, family: number, seq: number): Bytes {
  const body = new Uint8Array(headerLength);
  body[0] = family;
  return message(type, NLM_F.REQUEST | NLM_F.DUMP, seq, body);
}

/** An NLMSG_ERROR's errno (0 = an acknowledgement). */
export function errorOf(buf: Bytes, m: MessageHeader): number {
  if (m.length < 20) return 71; // EPROTO
  return Math.abs(new DataView(buf.buffer, buf.byteOffset + m.offset, m.length).getInt32(16, true));
}

/** An NLMSG_NOOP with an acknowledgement requested: its ACK marks everything sent before it as processed. */
export const ackBarrier = (seq: number) => message(NLMSG_NOOP, NLM_F.REQUEST | NLM_F.ACK, seq, new Uint8Array(0));

export type Reply = { kind: "ack" } | { kind: "error"; errno: number } | { kind: "link"; index: number } | { kind: "other"; type: number };

/** Reads the first message of a reply buffer. */
export function parseReply(buf: Bytes, length: number): Reply {
  if (length < 16) return { kind: "error", errno: 71 /* EPROTO */ };
  const dv = new DataView(buf.buffer, buf.byteOffset, length);
  const type = dv.getUint16(4, true);
  if (type === NLMSG_ERROR) {
    const err = dv.getInt32(16, true);
    return err === 0 ? { kind: "ack" } : { kind: "error", errno: -err };
  }
  if (type === RTM.NEWLINK && length >= 32) return { kind: "link", index: dv.getInt32(20, true) };
  return { kind: "other", type };
}
