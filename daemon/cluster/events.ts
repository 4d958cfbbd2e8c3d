import { CoreV1Api, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig } from "@kubernetes/client-node";
import { sha256Hex } from "../../lib/hash.ts";
import type { Logger } from "../../lib/log.ts";
import type { Metrics } from "../health/metrics.ts";

// Kubernetes Events for what an operator must act on, on the object
// concerned (a Node, a NetworkPolicy), so `kubectl describe` shows them.
//
// emit() never waits: it puts the event on a short queue that one worker
// sends, so an apiserver that is slow or down never holds up a reconcile.
// Like client-go's event correlator:
// - the same event (object, reason, message) again within 10 minutes is not
//   a new Event: the existing one's count and lastTimestamp are patched, at
//   most once per 30 s;
// - a token bucket (25, then one per 10 s) bounds what a node sends; past it,
//   and past 100 waiting, events are dropped and counted
//   (twill_events_total{outcome="dropped"}). EVENT_LIMITS has the numbers.
// The Event's name is derived from the object, reason and message (or a
// series key where daemons word the same problem differently: a left-out
// node's code), so every daemon that sees the same problem (each node's
// daemon lints every policy, sees every left-out node) names the same Event:
// the first creates it, the others find it exists (409) and leave it.

export interface EventLimits {
  dedupeMs: number;
  patchEveryMs: number;
  burst: number;
  refillMs: number;
  queueMax: number;
}

/** client-go's correlator uses a 10-minute window and a burst of 25 per object; one budget per node here. */
export const EVENT_LIMITS: EventLimits = { dedupeMs: 10 * 60_000, patchEveryMs: 30_000, burst: 25, refillMs: 10_000, queueMax: 100 };
/** Events about cluster-scoped objects live in "default", as client-go puts them. */
const CLUSTER_SCOPED_NAMESPACE = "default";

export interface EventTarget {
  kind: "Node" | "NetworkPolicy";
  apiVersion: string;
  name: string;
  namespace?: string;
  uid?: string;
}

export type EventType = "Warning" | "Normal";

export interface EventSink {
  create(namespace: string, event: CoreV1Event): Promise<"created" | "exists">;
  patch(namespace: string, name: string, patch: { count: number; lastTimestamp: Date }): Promise<void>;
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
  first: number;
  last: number;
  /** Count last written to the apiserver. */
  sent: number;
  created: boolean;
  /** When count was last patched. */
  patchedAt: number;
}

interface Job {
  key: string;
  event?: CoreV1Event;
}

export interface EventRecorderOptions {
  component: string;
  host: string;
  sink: EventSink;
  log: Logger;
  metrics?: Metrics;
  now?: () => number;
  limits?: Partial<EventLimits>;
}

export class EventRecorder {
  private readonly o: EventRecorderOptions;
  private readonly now: () => number;
  private readonly l: EventLimits;
  private readonly seen = new Map<string, Seen>();
  private queue: Job[] = [];
  private tokens: number;
  private refilledAt: number;
  private working = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(o: EventRecorderOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.l = { ...EVENT_LIMITS, ...o.limits };
    this.tokens = this.l.burst;
    this.refilledAt = this.now();
  }

  /** `series`: what makes two events the same one across daemons (default: the message). */
  warn(target: EventTarget, reason: string, message: string, series?: string): void {
    this.emit(target, "Warning", reason, message, series);
  }

  /** Queues the event (or counts a repeat of one already sent); returns at once. */
  emit(target: EventTarget, type: EventType, reason: string, message: string, series = message): void {
    if (this.stopped) return;
    const now = this.now();
    this.forgetOld(now);
    const key = `${target.kind}/${target.namespace ?? ""}/${target.name}/${reason}/${series}`;
    const s = this.seen.get(key);
    if (s && now - s.last < this.l.dedupeMs) {
      s.count++;
      s.last = now;
      if (s.created && now - s.patchedAt >= this.l.patchEveryMs) this.enqueue({ key }, reason);
      else this.later();
      return;
    }
    const namespace = target.namespace ?? CLUSTER_SCOPED_NAMESPACE;
    const name = `${target.name}.twill-${sha256Hex(key).slice(0, 12)}`.slice(0, 253);
    this.seen.set(key, { name, namespace, count: 1, first: now, last: now, sent: 0, created: false, patchedAt: 0 });
    const event: CoreV1Event = {
      metadata: { name, namespace },
      involvedObject: { kind: target.kind, apiVersion: target.apiVersion, name: target.name, ...(target.namespace ? { namespace: target.namespace } : {}), ...(target.uid ? { uid: target.uid } : {}) },
      reason,
      message: message.slice(0, 1024),
      type,
      count: 1,
      firstTimestamp: new Date(now),
      lastTimestamp: new Date(now),
      source: { component: this.o.component, host: this.o.host },
      reportingComponent: this.o.component,
      reportingInstance: this.o.host,
    };
    this.enqueue({ key, event }, reason);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.queue = [];
  }

  /** Waiting jobs (tests, and the daemon's shutdown). */
  pending(): number {
    return this.queue.length + (this.working ? 1 : 0);
  }

  private enqueue(job: Job, reason: string): void {
    if (this.queue.some((j) => j.key === job.key)) return;
    if (this.queue.length >= this.l.queueMax) {
      this.o.metrics?.events.inc({ reason, outcome: "dropped" });
      return;
    }
    this.queue.push(job);
    void this.work();
  }

  /** Repeats not patched yet are written once the patch interval has passed. */
  private later(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = this.now();
      let again = false;
      for (const [key, s] of this.seen) {
        if (s.count <= s.sent) continue;
        // Not created yet (a slow apiserver) or patched too recently: look again next interval.
        if (!s.created || now - s.patchedAt < this.l.patchEveryMs) again = true;
        else this.enqueue({ key }, "repeat");
      }
      if (again) this.later();
    }, this.l.patchEveryMs);
    this.timer.unref();
  }

  private take(): boolean {
    const now = this.now();
    const refill = Math.floor((now - this.refilledAt) / this.l.refillMs);
    if (refill > 0) {
      this.tokens = Math.min(this.l.burst, this.tokens + refill);
      this.refilledAt += refill * this.l.refillMs;
    }
    if (this.tokens === 0) return false;
    this.tokens--;
    return true;
  }

  private async work(): Promise<void> {
    if (this.working) return;
    this.working = true;
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const job = this.queue.shift()!;
        const s = this.seen.get(job.key);
        const reason = job.event?.reason ?? "repeat";
        if (!s) continue;
        if (!this.take()) {
          this.o.metrics?.events.inc({ reason, outcome: "dropped" });
          continue;
        }
        try {
          if (job.event) {
            const r = await this.o.sink.create(s.namespace, job.event);
            s.created = true;
            s.sent = 1;
            s.patchedAt = this.now();
            this.o.metrics?.events.inc({ reason, outcome: r });
            // Repeats that came while it was being created.
            if (s.count > s.sent) this.later();
          } else {
            await this.o.sink.patch(s.namespace, s.name, { count: s.count, lastTimestamp: new Date(s.last) });
            s.sent = s.count;
            s.patchedAt = this.now();
            this.o.metrics?.events.inc({ reason, outcome: "patched" });
          }
        } catch (err) {
          this.o.metrics?.events.inc({ reason, outcome: "failed" });
          this.o.log.warn({ code: "EVENT_FAILED", event: s.name, details: String((err as Error).message ?? err).slice(0, 300) }, "could not write a Kubernetes Event (the daemon carries on)");
        }
      }
    } finally {
      this.working = false;
    }
  }

  private forgetOld(now: number): void {
    if (this.seen.size < 1000) return;
    for (const [key, s] of this.seen) if (now - s.last >= this.l.dedupeMs) this.seen.delete(key);
  }
}

/** The apiserver as an EventSink (core/v1 Events, which events.k8s.io/v1 also serves). */
export function apiserverSink(kc: KubeConfig): EventSink {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async create(namespace, event) {
      try {
        await core.createNamespacedEvent({ namespace, body: event });
        return "created";
      } catch (err) {
        if ((err as { code?: number }).code === 409) return "exists";
        throw err;
      }
    },
    async patch(namespace, name, p) {
      await core.patchNamespacedEvent({ namespace, name, body: { count: p.count, lastTimestamp: p.lastTimestamp.toISOString() } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    },
  };
}

/**
 * The Events the daemon emits, by what happened. Reasons are fixed words an
 * operator can filter on (`kubectl get events --field-selector reason=…`).
 */
export class DaemonEvents {
  private readonly rec: EventRecorder;
  private readonly nodeName: string;
  private readonly nodeUid: (name: string) => string | undefined;

  constructor(rec: EventRecorder, nodeName: string, nodeUid: (name: string) => string | undefined) {
    this.rec = rec;
    this.nodeName = nodeName;
    this.nodeUid = nodeUid;
  }

  private node(name: string): EventTarget {
    const uid = this.nodeUid(name);
    return { kind: "Node", apiVersion: "v1", name, ...(uid ? { uid } : {}) };
  }

  /** A node this daemon does not connect (cluster/left-out.ts): on that node. */
  nodeLeftOut(node: string, code: string, reason: string): void {
    this.rec.warn(this.node(node), "TwillNodeLeftOut", `${code}: ${reason}`, code);
  }

  peerDown(peer: string, detail: string): void {
    this.rec.warn(this.node(this.nodeName), "BGPPeerDown", `BGP session with ${peer} went down (${detail}); routes learned from it are withdrawn`);
  }

  peerFlapping(peer: string, downs: number, minutes: number): void {
    this.rec.warn(this.node(this.nodeName), "BGPPeerFlapping", `BGP session with ${peer} went down ${downs} times in ${minutes} minutes: check the peer, the link and hold timers`);
  }

  /** Policy input Twill cannot enforce as written (policy/lint.ts): on the policy. */
  policyUnsupported(policy: { namespace: string; name: string; uid?: string }, problem: string): void {
    this.rec.warn({ kind: "NetworkPolicy", apiVersion: "networking.k8s.io/v1", namespace: policy.namespace, name: policy.name, ...(policy.uid ? { uid: policy.uid } : {}) }, "PolicyUnsupported", problem);
  }

  /** Anything else about this node, such as a rejected config file (config-watch.ts). */
  record(type: EventType, reason: string, message: string): void {
    this.rec.emit(this.node(this.nodeName), type, reason, message);
  }

  /** A CNI ADD on this node found no free address. */
  ipamExhausted(pod: string, podCidrs: string[]): void {
    this.rec.warn(this.node(this.nodeName), "IPAMExhausted", `no free pod address on this node (pod CIDR ${podCidrs.join(", ") || "none"}): pod ${pod} cannot start here; free addresses (twillctl ipam gc) or give the node a larger pod CIDR`);
  }
}
