import net from "node:net";
import type { Logger } from "../../../lib/log.ts";
import type { PathAttrs } from "../codec/update-types.ts";
import { systemClock, type Clock } from "../fsm/timers.ts";
import { Rib } from "../rib/rib.ts";
import type { BestChange, Route } from "../rib/route.ts";
import { ipv4ToNumber, type PeerConfig, type SpeakerConfig } from "./config.ts";
import { setListenerKey } from "./md5.ts";
import { Peer } from "./peer.ts";

// The speaker: one listening socket, one Peer per configured neighbour, one
// RIB. Best-route changes are handed to every peer (to advertise) and to the
// owner (to install in the kernel).

export interface SpeakerEvents {
  /** Best routes changed (learned or withdrawn), batched per received message. */
  onBest?(changes: BestChange[]): void;
  onPeerState?(peer: string, state: "established" | "down", detail: string): void;
  /** A peer's initial table is complete (End-of-RIB, RFC 4724 §2). */
  onEndOfRib?(peer: string): void;
}

export class Speaker {
  readonly rib: Rib;
  private readonly cfg: SpeakerConfig;
  private readonly log: Logger;
  private readonly events: SpeakerEvents;
  private readonly clock: Clock;
  private peers = new Map<string, Peer>();
  private server: net.Server | undefined;
  private started = false;
  /** The last key change per peer address: changes run one after another (see setKey). */
  private keyOps = new Map<string, Promise<boolean>>();

  constructor(cfg: SpeakerConfig, log: Logger, events: SpeakerEvents = {}, clock: Clock = systemClock) {
    this.cfg = cfg;
    this.log = log;
    this.events = events;
    this.clock = clock;
    const routerId = ipv4ToNumber(cfg.routerId);
    this.rib = new Rib({ asn: cfg.asn, routerId, clusterId: cfg.clusterId ? ipv4ToNumber(cfg.clusterId) : undefined });
  }

  async start(): Promise<void> {
    for (const p of this.cfg.peers) this.addPeer(p);
    if (this.cfg.listen) {
      const server = net.createServer((sock) => this.incoming(sock));
      server.on("error", (err) => this.log.error({ err }, "BGP listener failed"));
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.cfg.listen!.port, this.cfg.listen!.host, () => resolve());
      });
      this.server = server;
    }
    const keyed = await Promise.all([...this.peers.values()].map(async (p) => [p, !p.cfg.password || (await this.setKey(p.cfg.address, p.cfg.password))] as const));
    for (const [p, ok] of keyed) if (ok) p.start();
    this.started = true;
  }

  /**
   * Sets a peer's TCP MD5 key on the listener; false (logged) when it cannot be.
   * Each change is a child process: a peer re-created with a new password
   * removes the old key and sets the new one, and the removal must not land last.
   */
  private setKey(address: string, key: string): Promise<boolean> {
    const prev = this.keyOps.get(address) ?? Promise.resolve(true);
    const op = prev.then(() => this.applyKey(address, key));
    this.keyOps.set(address, op);
    void op.then(() => this.keyOps.get(address) === op && this.keyOps.delete(address));
    return op;
  }

  private async applyKey(address: string, key: string): Promise<boolean> {
    if (!this.server || !this.cfg.md5Helper) {
      this.log.error({ peer: address, code: "BGP_MD5_UNAVAILABLE" }, "this peer has a TCP MD5 password, which needs the speaker's listener and the twill binary (md5Helper): the peer is left out");
      return false;
    }
    try {
      await setListenerKey(this.server, address, key, this.cfg.md5Helper);
      return true;
    } catch (err) {
      const e = err as { code?: string; details?: string; message: string };
      this.log.error({ peer: address, code: e.code, details: e.details }, e.message);
      return false;
    }
  }

  async stop(): Promise<void> {
    for (const p of this.peers.values()) p.stop();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  /** Adds a neighbour; once the speaker runs, its session starts right away. */
  addPeer(cfg: PeerConfig): Peer {
    // An MD5 key is set on the listener only: such a peer must connect to us.
    const peer = new Peer(cfg.password ? { ...cfg, passive: true } : cfg, this.cfg, this.rib, this.clock, this.log, {
      changes: (c) => this.changed(c),
      state: (addr, state, detail) => this.events.onPeerState?.(addr, state, detail),
      endOfRib: (addr) => this.events.onEndOfRib?.(addr),
    });
    this.peers.set(cfg.address, peer);
    if (this.started && cfg.password) void this.setKey(cfg.address, cfg.password).then((ok) => ok && this.peers.get(cfg.address) === peer && peer.start());
    else if (this.started) peer.start();
    return peer;
  }

  /** Ends the session with a removed neighbour and forgets its routes. */
  removePeer(address: string): void {
    const peer = this.peers.get(address);
    if (!peer) return;
    peer.stop();
    this.peers.delete(address);
    // An empty key removes it from the listener.
    if (peer.cfg.password && this.server && this.cfg.md5Helper) void this.setKey(address, "");
    this.changed([...this.rib.clearPeer(address), ...this.rib.sweepStale(address)]);
  }

  peerAddresses(): string[] {
    return [...this.peers.keys()];
  }

  /** Every peer is established and has sent its initial table (End-of-RIB, RFC 4724 §2). */
  converged(): boolean {
    return [...this.peers.values()].every((p) => p.state === "Established" && p.endOfRib);
  }

  peer(address: string): Peer | undefined {
    return this.peers.get(address);
  }

  /** Originates a prefix (Twill's pod CIDR), ORIGIN IGP. */
  announce(prefix: string, attrs: PathAttrs = { origin: 0 }): void {
    this.changed(this.rib.originate(prefix, { origin: 0, ...attrs }, ""));
  }

  withdraw(prefix: string): void {
    this.changed(this.rib.withdrawLocal(prefix));
  }

  routes(): Route[] {
    return [...this.rib.bestRoutes()];
  }

  private changed(changes: BestChange[]): void {
    if (changes.length === 0) return;
    for (const p of this.peers.values()) p.offer(changes);
    try {
      this.events.onBest?.(changes);
    } catch (err) {
      this.log.error({ err }, "BGP route consumer failed");
    }
  }

  private incoming(sock: net.Socket): void {
    const addr = (sock.remoteAddress ?? "").replace(/^::ffff:/, "");
    const peer = this.peers.get(addr);
    sock.on("error", () => {});
    if (!peer) {
      // RFC 4271 §8: connections from unconfigured addresses are refused.
      this.log.info({ from: addr }, "BGP connection from an unknown address refused");
      sock.destroy();
      return;
    }
    peer.accept(sock);
  }
}
