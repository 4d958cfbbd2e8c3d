import type { PathAttrs } from "../codec/update-types.ts";
import { selectBest } from "./best.ts";
import { LOCAL, type BestChange, type LocalSpeaker, type PeerInfo, type Route } from "./route.ts";

// Adj-RIB-In per peer and the Loc-RIB of best routes (RFC 4271 §3.2, §9).
// Pure and synchronous: every call returns the best-route changes it caused.

export class Rib {
  readonly local: LocalSpeaker;
  private peers = new Map<string, PeerInfo>();
  /**
   * prefix → all candidates (the union of the Adj-RIBs-In and local routes):
   * the route itself while there is one (the usual case: a Map per prefix
   * cost ~200 bytes × 100k prefixes), a peer → route Map once there are more.
   */
  private candidates = new Map<string, Route | Map<string, Route>>();
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
      const r = this.candidate(p, peerId);
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
      if (this.candidate(p, peerId)?.stale) changes.push(...this.drop(peerId, p));
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
    return [...(this.adjIn.get(peerId) ?? [])].flatMap((p) => this.candidate(p, peerId) ?? []);
  }

  /** Prefixes in a peer's Adj-RIB-In (what its prefix limit counts). */
  prefixCount(peerId: string): number {
    return this.adjIn.get(peerId)?.size ?? 0;
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

  private candidate(prefix: string, peerId: string): Route | undefined {
    const c = this.candidates.get(prefix);
    if (c instanceof Map) return c.get(peerId);
    return c?.peer === peerId ? c : undefined;
  }

  private put(peerId: string, prefix: string, attrs: PathAttrs, nextHop: string): BestChange[] {
    const route: Route = { prefix, peer: peerId, attrs, nextHop, stale: false };
    const c = this.candidates.get(prefix);
    if (c instanceof Map) c.set(peerId, route);
    else if (c && c.peer !== peerId) this.candidates.set(prefix, new Map([[c.peer, c], [peerId, route]]));
    else this.candidates.set(prefix, route);
    let set = this.adjIn.get(peerId);
    if (!set) this.adjIn.set(peerId, (set = new Set()));
    set.add(prefix);
    return this.decide(prefix);
  }

  private drop(peerId: string, prefix: string): BestChange[] {
    const c = this.candidates.get(prefix);
    if (c instanceof Map) {
      if (!c.delete(peerId)) return [];
      if (c.size === 1) this.candidates.set(prefix, c.values().next().value!);
    } else {
      if (c?.peer !== peerId) return [];
      this.candidates.delete(prefix);
    }
    this.adjIn.get(peerId)?.delete(prefix);
    return this.decide(prefix);
  }

  private decide(prefix: string): BestChange[] {
    const before = this.loc.get(prefix);
    const c = this.candidates.get(prefix);
    const all = c instanceof Map ? [...c.values()] : c ? [c] : [];
    const best = selectBest(all, (id) => this.peers.get(id));
    if (best) this.loc.set(prefix, best);
    else this.loc.delete(prefix);
    // A replaced route object counts as a change even from the same peer: its attributes may differ.
    return before === best ? [] : [{ prefix, best }];
  }
}
