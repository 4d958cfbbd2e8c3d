import { Err, notification, type Notification } from "../codec/types.ts";

// A peer's maximum prefix count (RFC 4486 §4; BIRD's `receive limit`, FRR's
// `maximum-prefix`, GoBGP's `max-prefixes`): past the limit the session is
// closed with Cease / Maximum Number of Prefixes Reached and stays down for a
// backoff that doubles with every trip in a row, so a peer that keeps sending
// a full table costs one table's worth of work per backoff, never the node.

export interface MaxPrefixes {
  /** Most prefixes accepted from the peer (its Adj-RIB-In, IPv4 and IPv6 together). */
  limit: number;
  /** Log a warning once a session holds this share of the limit (percent, default 80). */
  warningPercent?: number;
  /** Backoff before the session may start again after a trip (seconds, default 60; doubles per trip in a row, at most an hour). */
  restartSeconds?: number;
}

export const CEASE_MAX_PREFIXES = 1;
export const DEFAULT_WARNING_PERCENT = 80;
export const DEFAULT_RESTART_SECONDS = 60;
const MAX_BACKOFF_SECONDS = 3600;

/**
 * The NOTIFICATION for a trip. RFC 4486 §4: the Data field may carry the
 * family and the limit — AFI (2 octets), SAFI (1), upper bound (4). Twill's
 * limit covers every family, so it names IPv4 unicast, the family counted.
 */
export function maxPrefixesNotification(limit: number): Notification {
  const data = new Uint8Array(7);
  const v = new DataView(data.buffer);
  v.setUint16(0, 1);
  v.setUint8(2, 1);
  v.setUint32(3, limit);
  return notification(Err.CEASE, CEASE_MAX_PREFIXES, data);
}

export type LimitVerdict = "ok" | "warn" | "exceeded";

/** Per-session state: what to do after a peer's prefix count changed. */
export class PrefixLimit {
  readonly cfg: MaxPrefixes;
  private warned = false;
  private trips = 0;

  constructor(cfg: MaxPrefixes) {
    this.cfg = cfg;
  }

  get warnAt(): number {
    return Math.ceil((this.cfg.limit * (this.cfg.warningPercent ?? DEFAULT_WARNING_PERCENT)) / 100);
  }

  /** A new session: the warning may come again. */
  sessionUp(): void {
    this.warned = false;
  }

  /** The peer's table is complete and within the limit: the next trip starts the backoff afresh. */
  settled(count: number): void {
    if (count <= this.cfg.limit) this.trips = 0;
  }

  check(count: number): LimitVerdict {
    if (count > this.cfg.limit) return "exceeded";
    if (!this.warned && count >= this.warnAt) {
      this.warned = true;
      return "warn";
    }
    return "ok";
  }

  /** Seconds to stay down after this trip. */
  trip(): number {
    this.trips++;
    return Math.min(MAX_BACKOFF_SECONDS, (this.cfg.restartSeconds ?? DEFAULT_RESTART_SECONDS) * 2 ** (this.trips - 1));
  }
}
