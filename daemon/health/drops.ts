import type { Metrics } from "./metrics.ts";

// NetworkPolicy drops per pod, from the policy table's named counters (one
// per isolated local pod and direction, daemon/policy/compile.ts), read when
// Prometheus scrapes. Label cardinality is bounded per node: a pod gets its
// own series when it first drops a packet, while fewer than POD_SERIES_CAP
// pods have one; the drops of every other pod count under pod="_other".
// A series lives as long as its pod is isolated here (its counter exists),
// then it is removed, so the bound holds over time, not only at one moment.
// twill_policy_dropped_packets_total counts every drop, uncapped by pod.
// Counters only grow: a counter that reads lower than before was created
// again (the pod isolated anew) and counts from zero.

export const POD_SERIES_CAP = 100;
const OTHER = { namespace: "_other", pod: "_other" };

export interface PodName {
  namespace: string;
  name: string;
}

/** Counter name (`in-10_1_0_5`, `eg-…`) → direction and pod address. */
function parseCounter(name: string): { direction: "ingress" | "egress"; ip: string } | undefined {
  const m = /^(in|eg)-(\d+_\d+_\d+_\d+)$/.exec(name);
  return m ? { direction: m[1] === "in" ? "ingress" : "egress", ip: m[2]!.replaceAll("_", ".") } : undefined;
}

export class DropAccounting {
  private readonly metrics: Metrics;
  private readonly cap: number;
  private last = new Map<string, number>();
  /** Counter name → the labels its drops are counted under (a pod's own, or _other). */
  private series = new Map<string, { namespace: string; pod: string; direction: string }>();
  private ownSeries = 0;

  constructor(metrics: Metrics, cap = POD_SERIES_CAP) {
    this.metrics = metrics;
    this.cap = cap;
  }

  /** One reading of the counters (name → packets) and who holds each address now. */
  update(readings: Map<string, number>, podAt: (ip: string) => PodName | undefined): void {
    // Pods gone first, so their places under the cap are free for this reading's newcomers.
    for (const name of [...this.last.keys()]) {
      if (readings.has(name)) continue;
      this.last.delete(name);
      const labels = this.series.get(name);
      this.series.delete(name);
      if (labels && labels.pod !== OTHER.pod) {
        this.metrics.policyPodDrops.remove(labels);
        this.ownSeries--;
      }
    }
    for (const [name, packets] of readings) {
      const c = parseCounter(name);
      if (!c) continue;
      const before = this.last.get(name) ?? 0;
      const delta = packets >= before ? packets - before : packets;
      this.last.set(name, packets);
      if (delta === 0) continue;
      this.metrics.policyDrops.inc({ direction: c.direction }, delta);
      const pod = podAt(c.ip);
      let labels = this.series.get(name);
      // Another pod holds the address now (deleted and reused between two readings): its own series.
      if (labels && labels.pod !== OTHER.pod && pod && (labels.pod !== pod.name || labels.namespace !== pod.namespace)) {
        this.metrics.policyPodDrops.remove(labels);
        this.ownSeries--;
        labels = undefined;
      }
      if (!labels) {
        const own = pod && this.ownSeries < this.cap;
        labels = own ? { namespace: pod.namespace, pod: pod.name, direction: c.direction } : { ...OTHER, direction: c.direction };
        if (own) this.ownSeries++;
        this.series.set(name, labels);
      }
      this.metrics.policyPodDrops.inc(labels, delta);
    }
  }
}
