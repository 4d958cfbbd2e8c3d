import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1Pod } from "@kubernetes/client-node";
import { compilePod, EVERY_ADDRESS, peerBlockIntervals, podsWithin, renderPod, rulePeers, type PeerResolver, type RenderedPod } from "./compile.ts";
import { policyTypes, selectorMatches, type ClusterState, type Direction } from "./model.ts";
import { SelectorIndex } from "./selector-index.ts";

// The node's policy rules, recompiled only where an input changed. Each local
// pod's rules are memoised under a signature of everything they depend on:
// the pod itself, the policies selecting it, and the version of every peer
// those policies name (from the selector index). One policy change therefore
// recompiles only the pods it selects; one pod change only the pods whose
// peers include it. The result equals compileNode() on the same state, rendered (a
// property test holds them to that).

const ids = new WeakMap<object, number>();
let nextId = 1;
function idOf(o: object): number {
  let id = ids.get(o);
  if (id === undefined) {
    id = nextId++;
    ids.set(o, id);
  }
  return id;
}

const DIRS: Direction[] = ["Ingress", "Egress"];

export interface CompileStats {
  /** Pods whose rules were compiled again (the others came from the memo). */
  recompiled: number;
  /** Pods re-tested against every peer by the selector index. */
  retested: number;
}

export class NodeCompiler {
  private readonly index = new SelectorIndex();
  private memo = new Map<string, { sig: string; rules: RenderedPod | undefined }>();
  private byNs = new Map<string, V1NetworkPolicy[]>();
  lastStats: CompileStats = { recompiled: 0, retested: 0 };

  /**
   * `podsOrNamespacesChanged: false` (the caller's watches did not move since
   * the last call) skips bringing the index up to date: one pass over every
   * pod saved on a policy-only change.
   */
  compile(state: ClusterState, localPods: V1Pod[], podsOrNamespacesChanged = true): RenderedPod[] {
    const retested = podsOrNamespacesChanged ? this.index.update(state.pods, state.namespaces) : 0;
    this.index.sweep();
    this.byNs = new Map();
    for (const p of state.policies) {
      const ns = p.metadata?.namespace ?? "default";
      let list = this.byNs.get(ns);
      if (!list) this.byNs.set(ns, (list = []));
      list.push(p);
    }
    const res = this.resolver();
    const next = new Map<string, { sig: string; rules: RenderedPod | undefined }>();
    const out: RenderedPod[] = [];
    let recompiled = 0;
    for (const pod of localPods) {
      const sig = this.signature(pod);
      const key = `${pod.metadata?.namespace ?? "default"}/${pod.metadata?.name ?? ""}`;
      const old = this.memo.get(key);
      let rules = old?.sig === sig ? old.rules : undefined;
      if (old?.sig !== sig) {
        const compiled = compilePod(res, pod);
        rules = compiled && renderPod(compiled);
        recompiled++;
      }
      next.set(key, { sig, rules });
      if (rules) out.push(rules);
    }
    this.memo = next;
    this.lastStats = { recompiled, retested };
    return out;
  }

  private selecting(pod: V1Pod, dir: Direction): V1NetworkPolicy[] {
    const labels = pod.metadata?.labels ?? {};
    return (this.byNs.get(pod.metadata?.namespace ?? "default") ?? []).filter((p) => policyTypes(p).includes(dir) && selectorMatches(p.spec?.podSelector, labels));
  }

  /** Everything a pod's rules depend on, as a string; touches (keeps) the peer entries it names. */
  private signature(pod: V1Pod): string {
    const parts: (string | number)[] = [this.index.podVersion(pod)];
    for (const dir of DIRS) {
      parts.push(dir);
      for (const p of this.selecting(pod, dir)) {
        parts.push(idOf(p));
        for (const r of dir === "Ingress" ? (p.spec?.ingress ?? []) : (p.spec?.egress ?? [])) {
          const peers = rulePeers(r, dir);
          // Egress named ports resolved on ipBlock or "everyone" peers depend on every pod's ports.
          const named = dir === "Egress" && (r.ports ?? []).some((e) => e.port !== undefined && !/^\d+$/.test(String(e.port)));
          if (named && (!peers?.length || peers.some((x) => x.ipBlock))) parts.push(`g${this.index.generation}`);
          for (const peer of peers ?? []) if (!peer.ipBlock) parts.push(this.index.entry(peer, p.metadata?.namespace ?? "default").version);
        }
      }
    }
    return parts.join(",");
  }

  private resolver(): PeerResolver {
    const intervals = (peers: V1NetworkPolicyPeer[] | undefined, policyNs: string): [bigint, bigint][] => {
      if (!peers?.length) return [EVERY_ADDRESS];
      return peers.flatMap((peer) => (peer.ipBlock ? peerBlockIntervals(peer) : this.index.points(this.index.entry(peer, policyNs))));
    };
    return {
      selecting: (pod, dir) => this.selecting(pod, dir),
      intervals,
      pods: (peers, policyNs) => {
        if (peers?.length && peers.every((x) => !x.ipBlock)) {
          const seen = new Map<string, V1Pod>();
          for (const peer of peers) for (const [k, pod] of this.index.entry(peer, policyNs).members) seen.set(k, pod);
          return podsWithin(seen.values(), [EVERY_ADDRESS]);
        }
        return podsWithin(this.index.allPods(), intervals(peers, policyNs));
      },
    };
  }

  stats(): { pods: number; peers: number } {
    return this.index.size();
  }
}
