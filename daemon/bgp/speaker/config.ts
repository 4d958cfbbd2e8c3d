import type { MaxPrefixes } from "./prefix-limit.ts";

// What a speaker is told: who it is, whom it talks to. Knows nothing of Kubernetes.

export interface PeerConfig {
  address: string;
  asn: number;
  /** TCP port of the peer (179). */
  port?: number;
  /** Only accept the peer's connection, never dial it. */
  passive?: boolean;
  /** Our proposed hold time for this peer (overrides the speaker's). */
  holdTime?: number;
  /** This peer is a route-reflector client of ours (only when clusterId is set). */
  rrClient?: boolean;
  /** TCP MD5 key (RFC 2385): set on the listener, so the peer is passive (see md5.ts). */
  password?: string;
  /** Most prefixes taken from this peer before the session is closed (prefix-limit.ts); none when unset. */
  maxPrefixes?: MaxPrefixes;
}

export interface SpeakerConfig {
  asn: number;
  /** Dotted-quad BGP Identifier. */
  routerId: string;
  /** Address and port to listen on; undefined = do not listen. */
  listen?: { host: string; port: number };
  /** Source address for outgoing connections and the next hop we announce (else the socket's local address). */
  localAddress?: string;
  /** IPv6 next hop for IPv6 prefixes (carried in MP_REACH_NLRI); IPv6 is offered only when set. */
  nextHop6?: string;
  holdTime?: number;
  connectRetryTime?: number;
  idleHoldTime?: number;
  /** RFC 4724: our restart time; undefined = no graceful restart capability. */
  gracefulRestart?: { restartTime: number; restarting: boolean };
  /** Reflect routes between iBGP peers with this cluster ID (RFC 4456). */
  clusterId?: string;
  peers: PeerConfig[];
  /**
   * Most prefixes learned from all peers together: the peer whose UPDATE
   * goes past it is closed as past its own limit. Set from the memory the
   * process may use, so no feed can exhaust it.
   */
  maxPrefixesTotal?: number;
  /** The `twill` binary that sets TCP MD5 keys (`twill md5sig`); without it peers with a password are left out. */
  md5Helper?: string;
}

export const BGP_PORT = 179;

export function ipv4ToNumber(text: string): number {
  const p = text.split(".").map(Number);
  return (((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) >>> 0;
}

export function numberToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
