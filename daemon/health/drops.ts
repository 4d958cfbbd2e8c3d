import type { Metrics } from "./metrics.ts";

// NetworkPolicy drops per pod, from the counter on each isolated local pod's
// final rule (`counter goto drop-…`, daemon/policy/compile.ts; read by
// daemon/api/drops.ts, which twillctl drops uses too), read when Prometheus
// scrapes, at most every MIN_READ_INTERVAL_MS. Label cardinality is bounded per node: a pod gets its
// own series when it first drops a packet, while fewer than POD_SERIES_CAP
// pods have one; the drops of every other pod count under pod="_other".
// A series lives as long as its pod is isolated here (its counter exists),
// then it is removed, so the bound holds over time, not only at one moment.
// twill_policy_dropped_packets_total counts every drop, uncapped by pod.
// A rule's counter starts from zero when its chain is rewritten (the pod's
// rules changed): a reading lower than the last counts from zero, and drops
// between the last reading and the rewrite are not counted.

export const POD_SERIES_CAP = 100;
/** Readings come from listing the policy table's rules (0.6–1.2 s at bench:policy's 182,000 elements): at most this often. */
export const MIN_READ_INTERVAL_MS = 15_000;
const OTHER = { namespace: "_other", pod: "_other" };

/** One pod chain's drop counter, as daemon/api/drops.ts reads it (pod "ns/name", or the address when unknown). */
export interface DropReading {
  pod: string;
  ip: string;
  direction: "ingress" | "egress";
  packets: number;
}

export class DropAccounting {
  private readonly metrics: Metrics;
  private readonly cap: number;
  private last = new Map<string, number>();
  /** direction/ip → the labels its drops are counted under (a pod's own, or _other). */
  private series = new Map<string, { namespace: string; pod: string; direction: string }>();
  private ownSeries = 0;

  constructor(metrics: Metrics, cap = POD_SERIES_CAP) {
    this.metrics = metrics;
    this.cap = cap;
  }

  private forget(key: string): void {
    const labels = this.series.get(key);
    this.series.delete(key);
    if (labels && labels.pod !== OTHER.pod) {
      this.metrics.policyPodDrops.remove(labels);
      this.ownSeries--;
    }
  }

  /** One reading of every isolated pod's counters. */
  update(readings: DropReading[]): void {
    const now = new Map(readings.map((r) => [`${r.direction}/${r.ip}`, r]));
    // Pods gone first, so their places under the cap are free for this reading's newcomers.
    for (const key of [...this.last.keys()]) {
      if (now.has(key)) continue;
      this.last.delete(key);
      this.forget(key);
    }
    for (const [key, r] of now) {
      const before = this.last.get(key) ?? 0;
      // Lower than before: the chain was flushed and refilled (its rules changed) and counts from zero.
      const delta = r.packets >= before ? r.packets - before : r.packets;
      this.last.set(key, r.packets);
      const slash = r.pod.indexOf("/");
      const pod = slash > 0 ? { namespace: r.pod.slice(0, slash), name: r.pod.slice(slash + 1) } : undefined;
      let labels = this.series.get(key);
      // Another pod holds the address now (deleted and reused between two readings): its own series.
      if (labels && labels.pod !== OTHER.pod && pod && (labels.pod !== pod.name || labels.namespace !== pod.namespace)) {
        this.forget(key);
        labels = undefined;
      }
      if (delta === 0) continue;
      this.metrics.policyDrops.inc({ direction: r.direction }, delta);
      if (!labels) {
        const own = pod && this.ownSeries < this.cap;
        labels = own ? { namespace: pod.namespace, pod: pod.name, direction: r.direction } : { ...OTHER, direction: r.direction };
        if (own) this.ownSeries++;
        this.series.set(key, labels);
      }
      this.metrics.policyPodDrops.inc(labels, delta);
    }
  }
}

/** A scrape hook that reads at most every MIN_READ_INTERVAL_MS; later scrapes see the last reading's counts. */
export function dropReader(accounting: DropAccounting, read: () => Promise<DropReading[]>, onError: (err: unknown) => void, minIntervalMs = MIN_READ_INTERVAL_MS): () => Promise<void> {
  let lastRead = -Infinity;
  let reading: Promise<void> | undefined;
  return () => {
    if (reading) return reading;
    if (performance.now() - lastRead < minIntervalMs) return Promise.resolve();
    lastRead = performance.now();
    reading = read()
      .then((r) => accounting.update(r), onError)
      .finally(() => (reading = undefined));
    return reading;
  };
}
