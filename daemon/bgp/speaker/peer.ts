import type net from "node:net";
import type { Logger } from "../../../lib/log.ts";
import { parseIp } from "../../../lib/net/cidr.ts";
import { peerAs, type Open } from "../codec/types.ts";
import { decodeUpdate } from "../codec/update-decode.ts";
import { encodeAnnouncements, encodeUpdate, encodeWithdrawals } from "../codec/update-encode.ts";
import type { PathAttrs, UpdateContext } from "../codec/update-types.ts";
import { collisionKeeps, type FsmConfig } from "../fsm/fsm.ts";
import type { Clock } from "../fsm/timers.ts";
import { familyOf } from "../codec/prefix.ts";
import { exportRoute, type Export } from "../rib/export.ts";
import type { Rib } from "../rib/rib.ts";
import type { BestChange, PeerInfo, Route } from "../rib/route.ts";
import { BGP_PORT, type PeerConfig, type SpeakerConfig } from "./config.ts";
import { negotiate, ourOpen, type Negotiated } from "./open.ts";
import { maxPrefixesNotification, PrefixLimit } from "./prefix-limit.ts";
import { Session, type SessionHooks } from "./session.ts";

// One configured neighbour: its connections (an outgoing one that retries, and
// incoming ones until collision detection picks one), what it taught the RIB,
// and what we told it (Adj-RIB-Out).

export interface PeerEvents {
  /** Best routes changed because of this peer. */
  changes(changes: BestChange[]): void;
  state(peer: string, state: "established" | "down", detail: string): void;
  /** The peer sent End-of-RIB for IPv4 unicast: its initial table is complete. */
  endOfRib?(peer: string): void;
}

export class Peer implements SessionHooks {
  readonly cfg: PeerConfig;
  private readonly speaker: SpeakerConfig;
  private readonly rib: Rib;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly events: PeerEvents;
  private readonly fsmCfg: FsmConfig;
  private readonly outgoing: Session;
  private incoming = new Set<Session>();
  private established: Session | undefined;
  private ctx: UpdateContext | undefined;
  private negotiated: Negotiated | undefined;
  /** prefix → key of the attributes last announced to this peer. */
  private adjOut = new Map<string, string>();
  private pending = new Map<string, Export | undefined>();
  private flushScheduled = false;
  private stopped = false;
  private sendEndOfRib = false;
  /** RFC 4724: the peer is restarting; its stale routes go when this fires or End-of-RIB arrives. */
  private restartTimer: unknown;
  private readonly limit: PrefixLimit;
  /** Set while the session is held down after the peer sent too many prefixes. */
  private backoffTimer: unknown;
  /** The peer has sent End-of-RIB for IPv4 on the current session: its initial table is complete. */
  endOfRib = false;
  info: PeerInfo;

  constructor(cfg: PeerConfig, speaker: SpeakerConfig, rib: Rib, clock: Clock, log: Logger, events: PeerEvents) {
    this.cfg = cfg;
    this.speaker = speaker;
    this.rib = rib;
    this.clock = clock;
    this.log = log.child({ peer: cfg.address });
    this.events = events;
    const holdTime = cfg.holdTime ?? speaker.holdTime ?? 90;
    this.fsmCfg = {
      localAs: speaker.asn,
      peerAs: cfg.asn,
      bgpId: rib.local.routerId,
      holdTime,
      connectRetryTime: speaker.connectRetryTime ?? 30,
      idleHoldTime: speaker.idleHoldTime ?? 5,
      passive: cfg.passive ?? false,
      open: ourOpen(speaker, holdTime),
    };
    this.info = {
      id: cfg.address,
      address: parseIp(cfg.address).value,
      asn: cfg.asn,
      bgpId: 0,
      internal: cfg.asn === speaker.asn,
      rrClient: cfg.rrClient ?? false,
    };
    rib.setPeer(this.info);
    // Without a limit of its own a peer still backs off when it takes the node past its total.
    this.limit = new PrefixLimit(cfg.maxPrefixes ?? { limit: Number.MAX_SAFE_INTEGER });
    this.outgoing = new Session("outgoing", this.fsmCfg, this.target(), clock, this, this.log);
  }

  get state() {
    return this.established?.state ?? this.outgoing.state;
  }

  start(): void {
    this.outgoing.start();
  }

  stop(): void {
    this.stopped = true;
    for (const s of [this.outgoing, ...this.incoming]) s.dispose();
    this.incoming.clear();
    if (this.restartTimer !== undefined) this.clock.clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (this.backoffTimer !== undefined) this.clock.clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
  }

  /** Held down after exceeding its prefix limit: no connection either way until the backoff ends. */
  get backingOff(): boolean {
    return this.backoffTimer !== undefined;
  }

  /** An accepted connection from this peer's address. */
  accept(sock: net.Socket): void {
    if (this.stopped || this.backingOff) {
      sock.destroy();
      return;
    }
    const s = new Session("incoming", { ...this.fsmCfg, passive: true }, this.target(), this.clock, this, this.log);
    this.incoming.add(s);
    s.adopt(sock);
  }

  /** Best-route changes from anywhere: queue what this peer should now hear. */
  offer(changes: BestChange[]): void {
    if (!this.established) return;
    for (const c of changes) {
      // A route this peer sent, or a prefix gone, where nothing was announced or queued to it: nothing to tell.
      if ((!c.best || c.best.peer === this.cfg.address) && !this.adjOut.has(c.prefix) && !this.pending.has(c.prefix)) continue;
      this.pending.set(c.prefix, c.best ? this.exportOf(c.best) : undefined);
    }
    this.scheduleFlush();
  }

  // --- SessionHooks ---

  onOpen(s: Session, open: Open): "continue" | "dump" {
    // RFC 4271 §6.8: another connection to the same peer past OpenSent collides with this one.
    for (const other of [this.outgoing, ...this.incoming]) {
      if (other === s || !["OpenSent", "OpenConfirm", "Established"].includes(other.state)) continue;
      if (other.state === "Established") {
        // Keep the running session; a dialled connection stays parked rather than retrying into it.
        if (s.direction === "outgoing") queueMicrotask(() => s.stop());
        return "dump";
      }
      // The identifier in this OPEN decides even when the other connection has not heard one yet.
      const keep = collisionKeeps(this.rib.local.routerId, open.bgpId);
      if (keep === s.direction) other.collisionDump();
      else return "dump";
    }
    return "continue";
  }

  onEstablished(s: Session, peer: Open, holdTime: number): void {
    for (const other of [this.outgoing, ...this.incoming]) {
      if (other === s) continue;
      // Colliding connections get Cease / Connection Collision Resolution; the dialler is parked.
      if (other.state === "OpenSent" || other.state === "OpenConfirm") other.collisionDump();
      if (other.direction === "outgoing") other.stop();
      else other.dispose();
    }
    for (const other of this.incoming) if (other !== s) this.incoming.delete(other);
    this.established = s;
    this.negotiated = negotiate(this.fsmCfg.open, peer);
    this.ctx = { fourOctetAs: this.negotiated.fourOctetAs, external: !this.info.internal, peerAs: peerAs(peer) };
    this.info.bgpId = peer.bgpId;
    this.endOfRib = false;
    this.limit.sessionUp();
    this.adjOut.clear();
    this.pending.clear();
    // A peer that comes back without preserving forwarding gets its stale routes swept now (RFC 4724 §4.2).
    if (this.restartTimer !== undefined && !this.negotiated.peerRestart?.forwardingPreserved.has("1/1")) this.endRestart();
    this.log.info({ holdTime, fourOctetAs: this.ctx.fourOctetAs, families: [...this.negotiated.families] }, "BGP session established");
    this.events.state(this.cfg.address, "established", s.direction);
    for (const r of this.rib.bestRoutes()) this.pending.set(r.prefix, this.exportOf(r));
    this.scheduleFlush(true);
  }

  onUpdate(s: Session, body: Uint8Array): void {
    if (s !== this.established || !this.ctx) return;
    const r = decodeUpdate(body, this.ctx);
    if (r.action === "reset") {
      this.log.warn({ code: r.error.code, subcode: r.error.subcode }, "malformed UPDATE: resetting the session (RFC 7606)");
      s.updateError(r.error);
      return;
    }
    if (r.action === "withdraw") {
      this.log.warn({ subcode: r.reason.subcode, prefixes: r.withdrawn.length }, "malformed UPDATE: treat-as-withdraw (RFC 7606)");
      this.events.changes(this.rib.update(this.cfg.address, [], r.withdrawn));
      return;
    }
    const u = r.update;
    const { mpReach, mpUnreach, ...attrs } = u.attrs;
    // End-of-RIB (RFC 4724 §2): an empty UPDATE, or an empty MP_UNREACH_NLRI alone.
    const empty = u.withdrawn.length === 0 && u.nlri.length === 0 && !mpReach;
    if (empty && (Object.keys(u.attrs).length === 0 || (mpUnreach && mpUnreach.withdrawn.length === 0 && Object.keys(u.attrs).length === 1))) {
      this.log.debug("End-of-RIB received");
      if (this.restartTimer !== undefined) this.endRestart();
      this.limit.settled(this.rib.prefixCount(this.cfg.address));
      if (!mpUnreach) {
        this.endOfRib = true;
        this.events.endOfRib?.(this.cfg.address);
      }
      return;
    }
    // Withdrawals first, then each group of prefixes with its next hop (no object per prefix: a feed is 100,000s).
    const changes = this.rib.withdraw(this.cfg.address, u.withdrawn);
    if (mpUnreach) this.rib.withdraw(this.cfg.address, mpUnreach.withdrawn, changes);
    this.rib.announce(this.cfg.address, u.nlri, attrs, attrs.nextHop ?? "", changes);
    if (mpReach) this.rib.announce(this.cfg.address, mpReach.nlri, attrs, mpReach.nextHops[0] ?? "", changes);
    this.events.changes(changes);
    this.checkLimit(s, this.limit);
  }

  /** After an UPDATE: warn near the limit; past it (or past the node's total), close with Cease and hold the session down for the backoff. */
  private checkLimit(s: Session, limit: PrefixLimit): void {
    const count = this.rib.prefixCount(this.cfg.address);
    const verdict = limit.check(count);
    if (verdict === "warn") {
      this.log.warn({ code: "BGP_MAX_PREFIXES_WARNING", prefixes: count, limit: limit.cfg.limit }, `BGP peer ${this.cfg.address} has sent ${count} prefixes, ${limit.cfg.warningPercent ?? 80} % or more of its limit of ${limit.cfg.limit}: past the limit the session is closed`);
    }
    const total = this.speaker.maxPrefixesTotal;
    const overNode = total !== undefined && this.rib.learnedCount > total;
    if (verdict !== "exceeded" && !overNode) return;
    const wait = limit.trip();
    if (verdict === "exceeded") {
      this.log.error(
        { code: "BGP_MAX_PREFIXES", prefixes: count, limit: limit.cfg.limit, restartSeconds: wait },
        `BGP peer ${this.cfg.address} sent more than its limit of ${limit.cfg.limit} prefixes: the session is closed (Cease, Maximum Number of Prefixes Reached) and its routes withdrawn; it may start again in ${wait} s. If the peer is right to send that many, raise spec.maxPrefixes.limit of its BGPPeer`,
      );
    } else {
      this.log.error(
        { code: "BGP_MAX_PREFIXES_NODE", prefixes: count, learned: this.rib.learnedCount, limit: total, restartSeconds: wait },
        `BGP peer ${this.cfg.address} took this node past ${total} learned prefixes, what the daemon's memory limit holds: the session is closed (Cease, Maximum Number of Prefixes Reached) and its routes withdrawn; it may start again in ${wait} s. Lower the peers' spec.maxPrefixes, filter on the peer, or give the daemon more memory (resources.limits.memory and --max-old-space-size in manifests/twill.yaml)`,
      );
    }
    // Held down first, so nothing the peer dials in meanwhile is accepted.
    this.backoffTimer = this.clock.setTimeout(() => {
      this.backoffTimer = undefined;
      if (!this.stopped && this.outgoing.state === "Idle") this.outgoing.start();
    }, wait * 1000);
    s.automaticStop(maxPrefixesNotification(verdict === "exceeded" ? limit.cfg.limit : Math.min(total!, 0xffffffff)));
    this.outgoing.stop();
    for (const other of this.incoming) if (other !== s) other.dispose();
  }

  onRouteRefresh(): void {
    // RFC 2918: send the whole Adj-RIB-Out again.
    this.adjOut.clear();
    for (const r of this.rib.bestRoutes()) this.pending.set(r.prefix, this.exportOf(r));
    this.scheduleFlush(false);
  }

  onDown(s: Session, reason: string, closedOnly: boolean): void {
    if (s !== this.established) return;
    this.established = undefined;
    this.adjOut.clear();
    this.pending.clear();
    const gr = this.negotiated?.peerRestart;
    this.events.state(this.cfg.address, "down", reason);
    if (closedOnly && gr && this.speaker.gracefulRestart) {
      // RFC 4724 §4.2: keep its routes, stale, for the restart time it announced.
      const n = this.rib.markStale(this.cfg.address);
      this.log.info({ reason, stale: n, restartTime: gr.restartTime }, "BGP peer restarting: keeping its routes as stale");
      if (this.restartTimer !== undefined) this.clock.clearTimeout(this.restartTimer);
      this.restartTimer = this.clock.setTimeout(() => this.endRestart(), gr.restartTime * 1000);
    } else {
      this.log.info({ reason }, "BGP session down: withdrawing its routes");
      this.endRestart();
      this.events.changes(this.rib.clearPeer(this.cfg.address));
    }
    if (s.direction === "incoming") {
      // The outgoing side was parked while the incoming connection ran: dial again.
      if (this.outgoing.state === "Idle") {
        this.clock.setTimeout(() => !this.stopped && !this.backingOff && this.outgoing.state === "Idle" && this.outgoing.start(), (this.fsmCfg.idleHoldTime || 1) * 1000);
      }
    }
  }

  onIdle(s: Session): void {
    // An accepted connection lives once: when it fails it is forgotten, timers and all,
    // so a peer that keeps sending garbage cannot pile up sessions.
    if (s.direction === "incoming" && this.incoming.delete(s)) s.dispose();
  }

  // --- internals ---

  private endRestart(): void {
    if (this.restartTimer !== undefined) this.clock.clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.events.changes(this.rib.sweepStale(this.cfg.address));
  }

  private target() {
    return { host: this.cfg.address, port: this.cfg.port ?? BGP_PORT, localAddress: this.speaker.localAddress };
  }

  /** What this peer should hear for a best route, next hop filled in. */
  private exportOf(r: Route): Export | undefined {
    if (!this.negotiated?.families.has(familyOf(r.prefix) === 1 ? "1/1" : "2/1")) return undefined;
    const e = exportRoute(r, this.rib.peer(r.peer), this.info, this.rib.local);
    if (!e) return undefined;
    const v6 = familyOf(r.prefix) === 2;
    const self = v6 ? this.speaker.nextHop6 : (this.speaker.localAddress ?? this.established?.localAddress);
    const nextHop = e.nextHopSelf ? self : r.nextHop;
    if (!nextHop) return undefined;
    return { attrs: v6 ? { ...e.attrs, nextHop: undefined, mpReach: { afi: 2, safi: 1, nextHops: [nextHop], nlri: [] } } : { ...e.attrs, nextHop }, nextHopSelf: e.nextHopSelf };
  }

  private scheduleFlush(endOfRib = false): void {
    if (endOfRib) this.sendEndOfRib = true;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const s = this.established;
    if (!s || !this.ctx) return;
    const four = this.ctx.fourOctetAs;
    const groups = new Map<string, { attrs: PathAttrs; prefixes: string[] }>();
    const withdrawn: string[] = [];
    for (const [prefix, e] of this.pending) {
      if (!e) {
        if (this.adjOut.delete(prefix)) withdrawn.push(prefix);
        continue;
      }
      const key = attrKey(e.attrs);
      if (this.adjOut.get(prefix) === key) continue;
      this.adjOut.set(prefix, key);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { attrs: e.attrs, prefixes: [] }));
      g.prefixes.push(prefix);
    }
    this.pending.clear();
    const out: Uint8Array[] = [];
    if (withdrawn.length) out.push(...encodeWithdrawals(withdrawn, four));
    for (const g of groups.values()) {
      const { mpReach, ...attrs } = g.attrs;
      out.push(...encodeAnnouncements(attrs, g.prefixes, mpReach?.nextHops, four));
    }
    if (this.sendEndOfRib) {
      this.sendEndOfRib = false;
      for (const f of this.negotiated?.families ?? []) {
        out.push(f === "1/1" ? encodeUpdate({ type: "update", withdrawn: [], attrs: {}, nlri: [] }, four)
          : encodeUpdate({ type: "update", withdrawn: [], attrs: { mpUnreach: { afi: 2, safi: 1, withdrawn: [] } }, nlri: [] }, four));
      }
    }
    if (out.length) s.write(out);
  }
}

function attrKey(a: PathAttrs): string {
  return JSON.stringify(a, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v));
}
