// BGP-4 messages (RFC 4271 §4) and the capabilities Twill speaks (RFC 5492):
// the types the codec produces and consumes. The codec is pure and never
// throws past its boundary: bad bytes become a Notification to send.

export const MARKER_LEN = 16;
export const HEADER_LEN = 19;
export const MAX_MESSAGE_LEN = 4096;
export const BGP_VERSION = 4;
/** RFC 6793: the 2-octet stand-in for a 4-octet AS. */
export const AS_TRANS = 23456;

export const MsgType = { OPEN: 1, UPDATE: 2, NOTIFICATION: 3, KEEPALIVE: 4, ROUTE_REFRESH: 5 } as const;

/** NOTIFICATION error codes and subcodes (RFC 4271 §4.5, §6; RFC 5492). */
export const Err = {
  HEADER: 1,
  OPEN: 2,
  UPDATE: 3,
  HOLD_TIMER: 4,
  FSM: 5,
  CEASE: 6,
} as const;
export const HeaderSub = { NOT_SYNCHRONIZED: 1, BAD_LENGTH: 2, BAD_TYPE: 3 } as const;
export const OpenSub = {
  UNSPECIFIC: 0,
  UNSUPPORTED_VERSION: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_ID: 3,
  UNSUPPORTED_OPT_PARAM: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  UNSUPPORTED_CAPABILITY: 7,
} as const;

export const CapCode = { MULTIPROTOCOL: 1, ROUTE_REFRESH: 2, GRACEFUL_RESTART: 64, FOUR_OCTET_AS: 65 } as const;
export const Afi = { IPV4: 1, IPV6: 2 } as const;
export const Safi = { UNICAST: 1 } as const;

export type Capability =
  | { code: 1; afi: number; safi: number }
  | { code: 2 }
  | { code: 64; restarting: boolean; restartTime: number; families: { afi: number; safi: number; forwardingPreserved: boolean }[] }
  | { code: 65; asn: number }
  | { code: number; raw: Uint8Array };

export interface Open {
  type: "open";
  version: number;
  /** The 2-octet My AS field (AS_TRANS when the real AS needs 4 octets). */
  myAs: number;
  holdTime: number;
  bgpId: number;
  capabilities: Capability[];
}

export interface Notification {
  type: "notification";
  code: number;
  subcode: number;
  data: Uint8Array;
}

export interface Keepalive {
  type: "keepalive";
}

export interface RouteRefresh {
  type: "route-refresh";
  afi: number;
  safi: number;
}

/** UPDATE bodies are passed through undecoded here (their codec is the next layer). */
export interface RawUpdate {
  type: "update";
  body: Uint8Array;
}

export type Message = Open | Notification | Keepalive | RouteRefresh | RawUpdate;

/** What decoding produced: a message, or the NOTIFICATION the RFC says to send. */
export type Decoded = { ok: true; message: Message; length: number } | { ok: false; error: Notification } | { ok: "incomplete" };

export function notification(code: number, subcode: number, data: Uint8Array = new Uint8Array()): Notification {
  return { type: "notification", code, subcode, data };
}

/** The AS a peer really has: its 4-octet AS capability when present (RFC 6793), else My AS. */
export function peerAs(open: Open): number {
  const four = open.capabilities.find((c): c is { code: 65; asn: number } => c.code === CapCode.FOUR_OCTET_AS && "asn" in c);
  return four ? four.asn : open.myAs;
}
