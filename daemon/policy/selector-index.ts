import type { V1Namespace, V1NetworkPolicyPeer, V1Pod } from "@kubernetes/client-node";
import { parseIp } from "../../lib/net/cidr.ts";
import { peerSelectsPod, type Labels } from "./model.ts";

// Which pods each policy peer selects, kept up to date incrementally (the
// label index of Calico's calculation graph, small): a changed pod is tested
// against every known peer, a new peer against every pod, so a policy change
// costs one scan of the pods and a pod change one pass over the peers —
// never pods × peers. Every entry has a version that moves whenever what it
// selects (or a selected pod) changes: the compiler's memo key.

interface PodRecord {
  key: string;
  pod: V1Pod;
  json: string;
  version: number;
}

export interface PeerEntry {
  readonly peer: V1NetworkPolicyPeer;
  readonly policyNs: string;
  readonly members: Map<string, V1Pod>;
  version: number;
  lastUsed: number;
  cachedPoints?: { version: number; points: [bigint, bigint][] };
}

const podKey = (p: V1Pod) => `${p.metadata?.namespace ?? "default"}/${p.metadata?.name ?? ""}`;
const v4 = (ip: string | undefined): ip is string => !!ip && !ip.includes(":");

export class SelectorIndex {
  private readonly pods = new Map<string, PodRecord>();
  private readonly nsLabels = new Map<string, { ns: V1Namespace; labels: Labels }>();
  private readonly entries = new Map<string, PeerEntry>();
  private readonly keyOfPeer = new WeakMap<V1NetworkPolicyPeer, string>();
  private nextVersion = 1;
  /** Moves whenever any pod changes: for answers that depend on every pod. */
  generation = 0;
  private sweepNo = 0;

  /** Brings the index to the given pods and namespaces; returns how many pods were re-tested. */
  update(pods: V1Pod[], namespaces: V1Namespace[]): number {
    const changedNs = new Set<string>();
    const seenNs = new Set<string>();
    for (const ns of namespaces) {
      const name = ns.metadata?.name ?? "";
      seenNs.add(name);
      const prev = this.nsLabels.get(name);
      if (prev?.ns === ns) continue;
      const labels = { ...(ns.metadata?.labels ?? {}), "kubernetes.io/metadata.name": name };
      if (!prev || JSON.stringify(prev.labels) !== JSON.stringify(labels)) changedNs.add(name);
      this.nsLabels.set(name, { ns, labels });
    }
    for (const name of this.nsLabels.keys()) {
      if (!seenNs.has(name)) {
        this.nsLabels.delete(name);
        changedNs.add(name);
      }
    }
    const changed = new Set<string>();
    const seen = new Set<string>();
    for (const pod of pods) {
      const key = podKey(pod);
      seen.add(key);
      const prev = this.pods.get(key);
      if (prev?.pod === pod) continue;
      const json = JSON.stringify(pod);
      if (prev && prev.json === json) {
        prev.pod = pod;
        continue;
      }
      this.pods.set(key, { key, pod, json, version: this.nextVersion++ });
      changed.add(key);
    }
    for (const key of this.pods.keys()) {
      if (!seen.has(key)) {
        this.pods.delete(key);
        changed.add(key);
      }
    }
    if (changedNs.size > 0) {
      for (const [key, r] of this.pods) if (changedNs.has(r.pod.metadata?.namespace ?? "default")) changed.add(key);
    }
    if (changed.size === 0) return 0;
    this.generation++;
    for (const key of changed) {
      const r = this.pods.get(key);
      for (const e of this.entries.values()) this.retest(e, key, r?.pod);
    }
    return changed.size;
  }

  private labelsOfNs(name: string): Labels {
    return this.nsLabels.get(name)?.labels ?? { "kubernetes.io/metadata.name": name };
  }

  private selects(e: PeerEntry, pod: V1Pod): boolean {
    return peerSelectsPod(e.peer, e.policyNs, pod, this.labelsOfNs(pod.metadata?.namespace ?? "default"));
  }

  private retest(e: PeerEntry, key: string, pod: V1Pod | undefined): void {
    const had = e.members.has(key);
    const match = !!pod && this.selects(e, pod);
    if (match) e.members.set(key, pod);
    else e.members.delete(key);
    if (match || had) e.version = this.nextVersion++;
  }

  /** The entry of a pod-selecting peer (not ipBlock), created with one scan of the pods the first time. */
  entry(peer: V1NetworkPolicyPeer, policyNs: string): PeerEntry {
    let id = this.keyOfPeer.get(peer);
    if (id === undefined) {
      id = `${policyNs}|${JSON.stringify(peer)}`;
      this.keyOfPeer.set(peer, id);
    }
    let e = this.entries.get(id);
    if (!e) {
      e = { peer, policyNs, members: new Map(), version: this.nextVersion++, lastUsed: this.sweepNo };
      for (const r of this.pods.values()) if (this.selects(e, r.pod)) e.members.set(r.key, r.pod);
      this.entries.set(id, e);
    }
    e.lastUsed = this.sweepNo;
    return e;
  }

  /** The IPv4 addresses an entry selects, as one-address intervals (cached per version). */
  points(e: PeerEntry): [bigint, bigint][] {
    if (e.cachedPoints?.version === e.version) return e.cachedPoints.points;
    const points: [bigint, bigint][] = [];
    for (const pod of e.members.values()) {
      const ip = pod.status?.podIP;
      if (!v4(ip)) continue;
      const v = parseIp(ip).value;
      points.push([v, v]);
    }
    e.cachedPoints = { version: e.version, points };
    return points;
  }

  /** The version of a pod's record (0 when unknown): changes whenever the pod does. */
  podVersion(pod: V1Pod): number {
    return this.pods.get(podKey(pod))?.version ?? 0;
  }

  allPods(): Iterable<V1Pod> {
    return [...this.pods.values()].map((r) => r.pod);
  }

  /** Starts a compile round: entries not used since the previous call to sweep are dropped. */
  sweep(): void {
    for (const [id, e] of this.entries) if (e.lastUsed < this.sweepNo) this.entries.delete(id);
    this.sweepNo++;
  }

  size(): { pods: number; peers: number } {
    return { pods: this.pods.size, peers: this.entries.size };
  }
}
