import type { PathAttrs } from "../codec/update-types.ts";
import { selectBest } from "./best.ts";
import { LOCAL, type BestChange, type LocalSpeaker, type PeerInfo, type Route } from "./route.ts";

// Adj-RIB-In per peer and the Loc-RIB of best routes (RFC 4271 §3.2, §9).
// Pure and synchronous: every call returns the best-route changes it caused.

export class Rib {
  readonly local: LocalSpeaker;
  private peers = new Map<string, PeerInfo>();
  /** prefix → peer → route: all candidates (the union of the Adj-RIBs-In and local routes). */
  private candidates = new Map<string, Map<string, Route>>();
  /** peer → prefixes it announced (its Adj-RIB-In, indexed). */
  private adjIn = new Map<string, Set<string>>();
  private loc = new Map<string, Route>();

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
    return this.put(LOCAL, prefix, attrs, nextHop);
  }

  withdrawLocal(prefix: string): BestChange[] {
    return this.drop(LOCAL, prefix);
  }

  /** Applies what a peer announced and withdrew. Routes failing the loop checks count as withdrawn. */
  update(peerId: string, announced: { prefix: string; attrs: PathAttrs; nextHop: string }[], withdrawn: string[]): BestChange[] {
    const changes: BestChange[] = [];
    for (const p of withdrawn) changes.push(...this.drop(peerId, p));
    for (const a of announced) {
      if (this.loops(peerId, a.attrs)) changes.push(...this.drop(peerId, a.prefix));
      else changes.push(...this.put(peerId, a.prefix, a.attrs, a.nextHop));
    }
    return changes;
  }

  /** Drops everything a peer announced (its session ended without graceful restart). */
  clearPeer(peerId: string): BestChange[] {
    const changes: BestChange[] = [];
    for (const p of [...(this.adjIn.get(peerId) ?? [])]) changes.push(...this.drop(peerId, p));
    return changes;
  }

  /** RFC 4724 §4.2: the peer restarts gracefully; its routes stay, marked stale. Returns how many. */
  markStale(peerId: string): number {
    let n = 0;
    for (const p of this.adjIn.get(peerId) ?? []) {
      const r = this.candidates.get(p)?.get(peerId);
      if (r) {
        r.stale = true;
        n++;
      }
    }
    return n;
  }

  /** End-of-RIB or restart timer: routes still stale are removed (RFC 4724 §4.2). */
  sweepStale(peerId: string): BestChange[] {
    const changes: BestChange[] = [];
    for (const p of [...(this.adjIn.get(peerId) ?? [])]) {
      if (this.candidates.get(p)?.get(peerId)?.stale) changes.push(...this.drop(peerId, p));
    }
    return changes;
  }

  best(prefix: string): Route | undefined {
    return this.loc.get(prefix);
  }

  bestRoutes(): IterableIterator<Route> {
    return this.loc.values();
  }

  adjRibIn(peerId: string): Route[] {
    return [...(this.adjIn.get(peerId) ?? [])].flatMap((p) => this.candidates.get(p)?.get(peerId) ?? []);
  }

  get size(): number {
    return this.loc.size;
  }

  /** RFC 4271 §9.1.2 (own AS in an eBGP path) and RFC 4456 §8 (our ORIGINATOR_ID or cluster ID come back). */
  private loops(peerId: string, attrs: PathAttrs): boolean {
    const peer = this.peers.get(peerId);
    if (peer && !peer.internal && attrs.asPath?.some((s) => s.asns.includes(this.local.asn))) return true;
    if (attrs.originatorId !== undefined && attrs.originatorId === this.local.routerId) return true;
    const cluster = this.local.clusterId;
    return cluster !== undefined && (attrs.clusterList?.includes(cluster) ?? false);
  }

  private put(peerId: string, prefix: string, attrs: PathAttrs, nextHop: string): BestChange[] {
    let c = this.candidates.get(prefix);
    if (!c) this.candidates.set(prefix, (c = new Map()));
    c.set(peerId, { prefix, peer: peerId, attrs, nextHop, stale: false });
    let set = this.adjIn.get(peerId);
    if (!set) this.adjIn.set(peerId, (set = new Set()));
    set.add(prefix);
    return this.decide(prefix, c);
  }

  private drop(peerId: string, prefix: string): BestChange[] {
    const c = this.candidates.get(prefix);
    if (!c?.delete(peerId)) return [];
    this.adjIn.get(peerId)?.delete(prefix);
    if (c.size === 0) this.candidates.delete(prefix);
    return this.decide(prefix, c);
  }

  private decide(prefix: string, c: Map<string, Route>): BestChange[] {
    const before = this.loc.get(prefix);
    const best = selectBest([...c.values()], (id) => this.peers.get(id));
    if (best) this.loc.set(prefix, best);
    else this.loc.delete(prefix);
    // A replaced route object counts as a change even from the same peer: its attributes may differ.
    return before === best ? [] : [{ prefix, best }];
  }
}
