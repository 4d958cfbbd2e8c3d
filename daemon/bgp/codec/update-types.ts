import type { Notification } from "./types.ts";

// UPDATE messages (RFC 4271 §4.3) with their path attributes decoded, and
// what decoding an UPDATE can lead to under RFC 7606.

export const AttrCode = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MED: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8,
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
} as const;

export const AttrFlag = { OPTIONAL: 0x80, TRANSITIVE: 0x40, PARTIAL: 0x20, EXTENDED: 0x10 } as const;

/** UPDATE Message Error subcodes (RFC 4271 §4.5). */
export const UpdateSub = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELL_KNOWN: 2,
  MISSING_WELL_KNOWN: 3,
  ATTRIBUTE_FLAGS: 4,
  ATTRIBUTE_LENGTH: 5,
  INVALID_ORIGIN: 6,
  INVALID_NEXT_HOP: 8,
  OPTIONAL_ATTRIBUTE: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;

export const Origin = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
export const SegType = { AS_SET: 1, AS_SEQUENCE: 2, CONFED_SEQUENCE: 3, CONFED_SET: 4 } as const;

export interface AsSegment {
  type: number;
  asns: number[];
}

export interface Aggregator {
  asn: number;
  address: string;
}

/** An attribute Twill does not interpret, kept to pass along (optional transitive) or dropped. */
export interface RawAttr {
  flags: number;
  code: number;
  value: Uint8Array;
}

export interface MpReach {
  afi: number;
  safi: number;
  /** One next hop, or for IPv6 a global and a link-local one (RFC 2545 §3). */
  nextHops: string[];
  nlri: string[];
}

export interface MpUnreach {
  afi: number;
  safi: number;
  withdrawn: string[];
}

/** Path attributes after decoding; the AS path is already in 4-octet form (RFC 6793 §4.2.3). */
export interface PathAttrs {
  origin?: number;
  asPath?: AsSegment[];
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: Aggregator;
  communities?: number[];
  originatorId?: number;
  clusterList?: number[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  unknown?: RawAttr[];
}

export interface Update {
  type: "update";
  withdrawn: string[];
  attrs: PathAttrs;
  nlri: string[];
}

/** What the session knows that decoding depends on. */
export interface UpdateContext {
  /** Both sides sent the 4-octet AS capability: AS numbers in AS_PATH and AGGREGATOR take 4 octets. */
  fourOctetAs: boolean;
  /** The peer is in another AS (LOCAL_PREF is discarded, the leftmost AS is checked). */
  external: boolean;
  /** The peer's AS, for the leftmost-AS check on eBGP sessions (RFC 4271 §6.3). */
  peerAs: number;
}

/**
 * RFC 7606 §2's three reactions: the UPDATE stands (maybe minus discarded
 * attributes), its routes are withdrawn, or the session resets.
 */
export type UpdateResult =
  | { action: "accept"; update: Update; discarded: number[] }
  | { action: "withdraw"; withdrawn: string[]; reason: Notification }
  | { action: "reset"; error: Notification };
