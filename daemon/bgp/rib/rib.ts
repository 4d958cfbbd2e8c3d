import type { PathAttrs } from "../codec/update-types.ts";
import { selectBest } from "./best.ts";
import { LOCAL, type BestChange, type LocalSpeaker, type PeerInfo, type Route } from "./route.ts";

// Adj-RIB-In per peer and the Loc-RIB of best routes (RFC 4271 §3.2, §9).
// Pure and synchronous: every call returns the best-route changes it caused.
//
// One table for all of it, keyed by prefix: most prefixes have one candidate,
// and then the route itself is the entry, the Adj-RIB-In and the Loc-RIB at
// once. Separate Loc-RIB and per-peer index maps cost ~35 bytes a prefix
// more a prefix; what needed the per-peer
// index (a peer's routes when its session drops) walks the table instead,
// which is what dropping that many routes costs anyway.

/** A prefix with candidates from several peers, and the best of them. */
class Contested {
  readonly byPeer: Map<string, Route>;
  best: Route | undefined;
  constructor(byPeer: Map<string, Route>, best: Route | undefined) {
    this.byPeer = byPeer;
    this.best = best;
  }
}

type Slot = Route | Contested;

const listOf = (c: BestChange | undefined): BestChange[] => (c ? [c] : []);


export class Rib {
  readonly local: LocalSpeaker;
  private peers = new Map<string, PeerInfo>();
  /** prefix → its one candidate (also the best), or all of them. */
  private table = new Map<string, Slot>();
  /** peer → how many prefixes it has in the table (its Adj-RIB-In's size). */
  private counts = new Map<string, number>();
  private learned = 0;

  constructor(local: LocalSpeaker) {
    this.local = local;
  }

  setPeer(p: PeerInfo): void {
    this.peers.set(p.id, p);
  }

  peer(id: string): PeerInfo | undefined {
    return this.peers.get(id);
  }

  /** Routes Twill originates (its pod CIDR). */
  originate(prefix: string, attrs: PathAttrs, nextHop: string): BestChange[] {
    return listOf(this.put(LOCAL, prefix, attrs, nextHop));
  }

  withdrawLocal(prefix: string): BestChange[] {
    return listOf(this.drop(LOCAL, prefix));
  }

  /** Applies what a peer announced and withdrew. Routes failing the loop checks count as withdrawn. */
  update(peerId: string, announced: { prefix: string; attrs: PathAttrs; nextHop: string }[], withdrawn: string[]): BestChange[] {
    const changes = this.withdraw(peerId, withdrawn);
    for (const a of announced) this.announce(peerId, [a.prefix], a.attrs, a.nextHop, changes);
    return changes;
  }

  /** A peer withdrew these prefixes; the changes are added to `changes`. */
  withdraw(peerId: string, prefixes: readonly string[], changes: BestChange[] = []): BestChange[] {
    for (const p of prefixes) {
      const c = this.drop(peerId, p);
      if (c) changes.push(c);
    }
    return changes;
  }

  /** A peer announced prefixes with one attribute set (one UPDATE); failing the loop checks, they count as withdrawn. */
  announce(peerId: string, prefixes: readonly string[], attrs: PathAttrs, nextHop: string, changes: BestChange[] = []): BestChange[] {
    const loops = this.loops(peerId, attrs);
    for (const p of prefixes) {
      const c = loops ? this.drop(peerId, p) : this.put(peerId, p, attrs, nextHop);
      if (c) changes.push(c);
    }
    return changes;
  }

  /** Drops everything a peer announced (its session ended without graceful restart). */
  clearPeer(peerId: string): BestChange[] {
    return this.dropWhere(peerId, () => true);
  }

  /** RFC 4724 §4.2: the peer restarts gracefully; its routes stay, marked stale. Returns how many. */
  markStale(peerId: string): number {
    let n = 0;
    for (const r of this.candidatesOf(peerId)) {
      r.stale = true;
      n++;
    }
    return n;
  }

  /** End-of-RIB or restart timer: routes still stale are removed (RFC 4724 §4.2). */
  sweepStale(peerId: string): BestChange[] {
    return this.dropWhere(peerId, (r) => r.stale);
  }

  best(prefix: string): Route | undefined {
    const s = this.table.get(prefix);
    return s instanceof Contested ? s.best : s;
  }

  *bestRoutes(): IterableIterator<Route> {
    for (const s of this.table.values()) {
      if (!(s instanceof Contested)) yield s;
      else if (s.best) yield s.best;
    }
  }

  adjRibIn(peerId: string): Route[] {
    return [...this.candidatesOf(peerId)];
  }

  /** Prefixes in a peer's Adj-RIB-In (what its prefix limit counts). */
  prefixCount(peerId: string): number {
    return this.counts.get(peerId) ?? 0;
  }

  /** Prefixes in every peer's Adj-RIB-In together (what the node-wide limit counts). */
  get learnedCount(): number {
    return this.learned;
  }

  /** Prefixes with a best route. */
  get size(): number {
    return this.table.size;
  }

  /** RFC 4271 §9.1.2 (own AS in an eBGP path) and RFC 4456 §8 (our ORIGINATOR_ID or cluster ID come back). */
  private loops(peerId: string, attrs: PathAttrs): boolean {
    const peer = this.peers.get(peerId);
    if (peer && !peer.internal && attrs.asPath?.some((s) => s.asns.includes(this.local.asn))) return true;
    if (attrs.originatorId !== undefined && attrs.originatorId === this.local.routerId) return true;
    const cluster = this.local.clusterId;
    return cluster !== undefined && (attrs.clusterList?.includes(cluster) ?? false);
  }

  private *candidatesOf(peerId: string): IterableIterator<Route> {
    if (!this.counts.get(peerId)) return;
    for (const s of this.table.values()) {
      const r = s instanceof Contested ? s.byPeer.get(peerId) : s.peer === peerId ? s : undefined;
      if (r) yield r;
    }
  }

  private dropWhere(peerId: string, test: (r: Route) => boolean): BestChange[] {
    const prefixes: string[] = [];
    for (const r of this.candidatesOf(peerId)) if (test(r)) prefixes.push(r.prefix);
    const changes: BestChange[] = [];
    return this.withdraw(peerId, prefixes);
  }

  private count(peerId: string, by: number): void {
    this.counts.set(peerId, (this.counts.get(peerId) ?? 0) + by);
    if (peerId !== LOCAL) this.learned += by;
  }

  /** The best-route change a new candidate makes, if any. */
  private put(peerId: string, prefix: string, attrs: PathAttrs, nextHop: string): BestChange | undefined {
    const route: Route = { prefix, peer: peerId, attrs, nextHop, stale: false };
    const s = this.table.get(prefix);
    if (s === undefined || (!(s instanceof Contested) && s.peer === peerId)) {
      if (s === undefined) this.count(peerId, 1);
      this.table.set(prefix, route);
      // A replaced route object counts as a change even from the same peer: its attributes may differ.
      return { prefix, best: route };
    }
    if (s instanceof Contested) {
      if (!s.byPeer.has(peerId)) this.count(peerId, 1);
      s.byPeer.set(peerId, route);
      return this.decide(prefix, s);
    }
    this.count(peerId, 1);
    const c = new Contested(new Map([[s.peer, s], [peerId, route]]), s);
    this.table.set(prefix, c);
    return this.decide(prefix, c);
  }

  private drop(peerId: string, prefix: string): BestChange | undefined {
    const s = this.table.get(prefix);
    if (s === undefined) return undefined;
    if (!(s instanceof Contested)) {
      if (s.peer !== peerId) return undefined;
      this.table.delete(prefix);
      this.count(peerId, -1);
      return { prefix, best: undefined };
    }
    if (!s.byPeer.delete(peerId)) return undefined;
    this.count(peerId, -1);
    if (s.byPeer.size > 1) return this.decide(prefix, s);
    const only = s.byPeer.values().next().value!;
    this.table.set(prefix, only);
    return s.best === only ? undefined : { prefix, best: only };
  }

  private decide(prefix: string, s: Contested): BestChange | undefined {
    const before = s.best;
    const best = selectBest([...s.byPeer.values()], (id) => this.peers.get(id));
    s.best = best;
    return before === best ? undefined : { prefix, best };
  }
}
