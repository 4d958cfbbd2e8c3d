import { AS_TRANS, CapCode, HEADER_LEN, MsgType, type Capability, type Message } from "./types.ts";

const be16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

function frame(type: number, body: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(HEADER_LEN + body.length);
  out.fill(0xff, 0, 16);
  out.set(be16(out.length), 16);
  out[18] = type;
  out.set(body as ArrayLike<number>, HEADER_LEN);
  return out;
}

function capability(c: Capability): number[] {
  if ("raw" in c) return [c.code, c.raw.length, ...c.raw];
  switch (c.code) {
    case CapCode.MULTIPROTOCOL:
      return [c.code, 4, ...be16((c as { afi: number }).afi), 0, (c as { safi: number }).safi];
    case CapCode.ROUTE_REFRESH:
      return [c.code, 0];
    case CapCode.FOUR_OCTET_AS:
      return [c.code, 4, ...be32((c as { asn: number }).asn)];
    default: {
      const gr = c as Extract<Capability, { code: 64 }>;
      const body = [...be16((gr.restarting ? 0x8000 : 0) | (gr.restartTime & 0x0fff)), ...gr.families.flatMap((f) => [...be16(f.afi), f.safi, f.forwardingPreserved ? 0x80 : 0])];
      return [c.code, body.length, ...body];
    }
  }
}

export function encodeMessage(m: Message): Uint8Array {
  switch (m.type) {
    case "keepalive":
      return frame(MsgType.KEEPALIVE, []);
    case "notification":
      return frame(MsgType.NOTIFICATION, [m.code, m.subcode, ...m.data]);
    case "route-refresh":
      return frame(MsgType.ROUTE_REFRESH, [...be16(m.afi), 0, m.safi]);
    case "update":
      return frame(MsgType.UPDATE, m.body);
    case "open": {
      // One capabilities parameter holding all capabilities (RFC 5492 allows either form).
      const caps = m.capabilities.flatMap(capability);
      const params = caps.length > 0 ? [2, caps.length, ...caps] : [];
      return frame(MsgType.OPEN, [m.version, ...be16(m.myAs), ...be16(m.holdTime), ...be32(m.bgpId), params.length, ...params]);
    }
  }
}

/** The My AS field for a local AS: itself when it fits 2 octets, else AS_TRANS (RFC 6793 §4.1). */
export function myAsField(asn: number): number {
  return asn > 0xffff ? AS_TRANS : asn;
}
