import { eachAttr, message, NLM_F, parseMessages, type MessageHeader } from "./rtnl.ts";

// nfnetlink_log (NFNL_SUBSYS_ULOG): the codec for binding one nflog group and
// reading the packets the kernel logs to it (nft's `log group N`). Only what
// the drop reader needs: bind, copy mode, flush threshold; packet prefix,
// timestamp, devices and the first bytes of the packet.

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_ULOG = 4;
const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
export const NFLOG_PACKET_TYPE = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
const CFG = { CMD: 1, MODE: 2, TIMEOUT: 3, QTHRESH: 4 } as const;
const CMD = { BIND: 1, UNBIND: 2 } as const;
const COPY_PACKET = 2;
const ULA = { TIMESTAMP: 3, IFINDEX_INDEV: 4, IFINDEX_OUTDEV: 5, PAYLOAD: 9, PREFIX: 10 } as const;

function attr(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array((4 + body.length + 3) & ~3);
  out[0] = (4 + body.length) & 0xff;
  out[1] = (4 + body.length) >> 8;
  out[2] = type & 0xff;
  out[3] = type >> 8;
  out.set(body, 4);
  return out;
}

const be32 = (v: number) => new Uint8Array([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);

/** A config message for `group` (nfgenmsg: family AF_UNSPEC, version 0, res_id = group, big-endian). */
function config(seq: number, group: number, attrs: Uint8Array[]): Uint8Array {
  const body = [new Uint8Array([0, 0, (group >> 8) & 0xff, group & 0xff]), ...attrs];
  const total = body.reduce((n, b) => n + b.length, 0);
  const payload = new Uint8Array(total);
  let off = 0;
  for (const b of body) {
    payload.set(b, off);
    off += b.length;
  }
  return message((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG, NLM_F.REQUEST | NLM_F.ACK, seq, payload);
}

/** Binds the socket to `group`, copying the first `copyRange` bytes of each packet, each packet sent at once. */
export function bindGroup(seq: number, group: number, copyRange: number): Uint8Array[] {
  return [
    config(seq, group, [attr(CFG.CMD, new Uint8Array([CMD.BIND]))]),
    config(seq + 1, group, [attr(CFG.MODE, new Uint8Array([...be32(copyRange), COPY_PACKET, 0])), attr(CFG.QTHRESH, be32(1)), attr(CFG.TIMEOUT, be32(1))]),
  ];
}

export function unbindGroup(seq: number, group: number): Uint8Array {
  return config(seq, group, [attr(CFG.CMD, new Uint8Array([CMD.UNBIND]))]);
}

export interface LoggedPacket {
  prefix: string;
  /** ms since the epoch (the kernel's timestamp, else now). */
  time: number;
  inIfindex: number;
  outIfindex: number;
  src: string;
  dst: string;
  /** IP protocol number. */
  proto: number;
  /** Destination port (TCP, UDP, SCTP), else null. */
  dport: number | null;
  sport: number | null;
}

const fail = (why: string) => new Error(`malformed nflog message: ${why}`);
const be32At = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/** Decodes an IPv4 packet's addresses and ports; undefined for anything else. */
function ipv4(b: Uint8Array, at: number, len: number): Pick<LoggedPacket, "src" | "dst" | "proto" | "dport" | "sport"> | undefined {
  if (len < 20 || b[at]! >> 4 !== 4) return undefined;
  const ihl = (b[at]! & 0x0f) * 4;
  const proto = b[at + 9]!;
  const addr = (o: number) => `${b[at + o]}.${b[at + o + 1]}.${b[at + o + 2]}.${b[at + o + 3]}`;
  const hasPorts = (proto === 6 || proto === 17 || proto === 132) && len >= ihl + 4;
  const port = (o: number) => (b[at + ihl + o]! << 8) | b[at + ihl + o + 1]!;
  return { src: addr(12), dst: addr(16), proto, sport: hasPorts ? port(0) : null, dport: hasPorts ? port(2) : null };
}

/** The packet messages of one datagram from the kernel. */
export function parsePackets(buf: Uint8Array): LoggedPacket[] {
  const out: LoggedPacket[] = [];
  for (const m of parseMessages(buf)) {
    if (m.type !== NFLOG_PACKET_TYPE) continue;
    const p = parsePacket(buf, m);
    if (p) out.push(p);
  }
  return out;
}

function parsePacket(b: Uint8Array, m: MessageHeader): LoggedPacket | undefined {
  let prefix = "";
  let time = 0;
  let inIfindex = 0;
  let outIfindex = 0;
  let ip: ReturnType<typeof ipv4>;
  // nlmsghdr (16) + nfgenmsg (4), then attributes.
  eachAttr(b, m.offset + 20, m.offset + m.length, fail, (type, at, len) => {
    if (type === ULA.PREFIX) prefix = new TextDecoder().decode(b.subarray(at, at + len)).replace(/\0+$/, "");
    else if (type === ULA.TIMESTAMP && len >= 16) time = be32At(b, at + 4) * 1000 + Math.floor(be32At(b, at + 12) / 1000); // be64 seconds, be64 microseconds
    else if (type === ULA.IFINDEX_INDEV && len >= 4) inIfindex = be32At(b, at);
    else if (type === ULA.IFINDEX_OUTDEV && len >= 4) outIfindex = be32At(b, at);
    else if (type === ULA.PAYLOAD) ip = ipv4(b, at, len);
  });
  if (!ip) return undefined;
  return { prefix, time: time || Date.now(), inIfindex, outIfindex, ...ip };
}
