import {
  BGP_VERSION, CapCode, Err, HEADER_LEN, HeaderSub, MARKER_LEN, MAX_MESSAGE_LEN, MsgType, notification, OpenSub,
  type Capability, type Decoded, type Open,
} from "./types.ts";

// Decoding of one message from the front of a buffer (RFC 4271 §4, §6.1,
// §6.2; RFC 5492). Every check the RFC names yields the NOTIFICATION it
// prescribes, with its data; nothing here throws.

const u16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) >>> 0) + (b[o + 1]! << 16) + (b[o + 2]! << 8) + b[o + 3]!;
const be16 = (v: number) => Uint8Array.of((v >> 8) & 0xff, v & 0xff);

/** Minimum (and for KEEPALIVE exact) lengths per type, RFC 4271 §6.1. */
const MIN_LEN: Record<number, number> = { [MsgType.OPEN]: 29, [MsgType.UPDATE]: 23, [MsgType.NOTIFICATION]: 21, [MsgType.KEEPALIVE]: 19, [MsgType.ROUTE_REFRESH]: 23 };

export function decodeMessage(buf: Uint8Array): Decoded {
  if (buf.length < HEADER_LEN) return { ok: "incomplete" };
  for (let i = 0; i < MARKER_LEN; i++) {
    if (buf[i] !== 0xff) return { ok: false, error: notification(Err.HEADER, HeaderSub.NOT_SYNCHRONIZED) };
  }
  const length = u16(buf, 16);
  const type = buf[18]!;
  const badLength = () => ({ ok: false as const, error: notification(Err.HEADER, HeaderSub.BAD_LENGTH, be16(length)) });
  if (length < HEADER_LEN || length > MAX_MESSAGE_LEN) return badLength();
  if (!(type in MIN_LEN)) return { ok: false, error: notification(Err.HEADER, HeaderSub.BAD_TYPE, Uint8Array.of(type)) };
  if (length < MIN_LEN[type]! || (type === MsgType.KEEPALIVE && length !== HEADER_LEN) || (type === MsgType.ROUTE_REFRESH && length !== 23)) {
    return badLength();
  }
  if (buf.length < length) return { ok: "incomplete" };
  const body = buf.subarray(HEADER_LEN, length);
  switch (type) {
    case MsgType.KEEPALIVE:
      return { ok: true, message: { type: "keepalive" }, length };
    case MsgType.NOTIFICATION:
      return { ok: true, message: notification(body[0]!, body[1]!, body.slice(2)), length };
    case MsgType.ROUTE_REFRESH:
      return { ok: true, message: { type: "route-refresh", afi: u16(body, 0), safi: body[3]! }, length };
    case MsgType.UPDATE:
      return { ok: true, message: { type: "update", body: body.slice() }, length };
    default: {
      const open = decodeOpen(body);
      return "error" in open ? { ok: false, error: open.error } : { ok: true, message: open, length };
    }
  }
}

function decodeCapabilities(b: Uint8Array): Capability[] | undefined {
  const caps: Capability[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 2 > b.length) return undefined;
    const code = b[o]!;
    const len = b[o + 1]!;
    const v = b.subarray(o + 2, o + 2 + len);
    if (v.length !== len) return undefined;
    if (code === CapCode.MULTIPROTOCOL) {
      if (len !== 4) return undefined;
      caps.push({ code, afi: u16(v, 0), safi: v[3]! });
    } else if (code === CapCode.ROUTE_REFRESH) {
      if (len !== 0) return undefined;
      caps.push({ code });
    } else if (code === CapCode.FOUR_OCTET_AS) {
      if (len !== 4) return undefined;
      caps.push({ code, asn: u32(v, 0) });
    } else if (code === CapCode.GRACEFUL_RESTART) {
      if (len < 2 || (len - 2) % 4 !== 0) return undefined;
      const families = [];
      for (let f = 2; f < len; f += 4) families.push({ afi: u16(v, f), safi: v[f + 2]!, forwardingPreserved: (v[f + 3]! & 0x80) !== 0 });
      caps.push({ code, restarting: (v[0]! & 0x80) !== 0, restartTime: u16(v, 0) & 0x0fff, families });
    } else {
      // Unknown capabilities are kept and ignored (RFC 5492 §3).
      caps.push({ code, raw: v.slice() });
    }
    o += 2 + len;
  }
  return caps;
}

/** OPEN body (after the header), RFC 4271 §4.2 and §6.2. */
export function decodeOpen(b: Uint8Array): Open | { error: ReturnType<typeof notification> } {
  const fail = (sub: number, data?: Uint8Array) => ({ error: notification(Err.OPEN, sub, data) });
  if (b.length < 10) return { error: notification(Err.HEADER, HeaderSub.BAD_LENGTH, be16(b.length + HEADER_LEN)) };
  const version = b[0]!;
  // Data: the largest version we support.
  if (version !== BGP_VERSION) return fail(OpenSub.UNSUPPORTED_VERSION, be16(BGP_VERSION));
  const myAs = u16(b, 1);
  const holdTime = u16(b, 3);
  const bgpId = u32(b, 5);
  const optLen = b[9]!;
  if (holdTime === 1 || holdTime === 2) return fail(OpenSub.UNACCEPTABLE_HOLD_TIME);
  if (bgpId === 0) return fail(OpenSub.BAD_BGP_ID);
  if (myAs === 0) return fail(OpenSub.BAD_PEER_AS);
  if (10 + optLen !== b.length) return fail(OpenSub.UNSPECIFIC);
  const capabilities: Capability[] = [];
  let o = 10;
  while (o < b.length) {
    if (o + 2 > b.length) return fail(OpenSub.UNSPECIFIC);
    const ptype = b[o]!;
    const plen = b[o + 1]!;
    if (o + 2 + plen > b.length) return fail(OpenSub.UNSPECIFIC);
    // Type 2 (capabilities) is the only optional parameter in use (RFC 5492; 1 was deprecated by RFC 4271).
    if (ptype !== 2) return fail(OpenSub.UNSUPPORTED_OPT_PARAM);
    const caps = decodeCapabilities(b.subarray(o + 2, o + 2 + plen));
    if (!caps) return fail(OpenSub.UNSPECIFIC);
    capabilities.push(...caps);
    o += 2 + plen;
  }
  return { type: "open", version, myAs, holdTime, bgpId, capabilities };
}
