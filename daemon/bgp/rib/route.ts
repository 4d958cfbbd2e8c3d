import type { PathAttrs } from "../codec/update-types.ts";

// What the RIB stores: routes with the attributes they arrived with and the
// peer they came from (RFC 4271 §3.2).

/** A BGP neighbour as the RIB sees it. */
export interface PeerInfo {
  /** Key of the session (the peer's address). */
  id: string;
  /** Numeric form of the peer's address, for the final tie-break. */
  address: bigint;
  asn: number;
  bgpId: number;
  /** In our AS (iBGP). */
  internal: boolean;
  /** A route-reflector client of ours (RFC 4456). */
  rrClient: boolean;
}

export interface LocalSpeaker {
  asn: number;
  routerId: number;
  /** Set when Twill reflects routes (RFC 4456 §7: defaults to the router ID). */
  clusterId: number | undefined;
}

export const LOCAL = "local";

export interface Route {
  prefix: string;
  /** LOCAL for routes Twill originates. */
  peer: string;
  attrs: PathAttrs;
  /** The next hop as a plain address (NEXT_HOP or the MP_REACH next hop). */
  nextHop: string;
  /** Kept through a peer's graceful restart until refreshed or swept (RFC 4724 §4.2). */
  stale: boolean;
}

/** The best route for a prefix changed; best undefined means the prefix is gone. */
export interface BestChange {
  prefix: string;
  best: Route | undefined;
}

export const DEFAULT_LOCAL_PREF = 100;
