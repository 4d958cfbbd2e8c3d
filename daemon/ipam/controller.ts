import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Logger } from "../../lib/log.ts";
import { watchResource, type ResourceWatch } from "../cluster/resource-watch.ts";
import { sweepIpam } from "./sweep.ts";

// The daemon's periodic IPAM sweep (plan.ts says what it may release and why).
// Pods come from a watch of this node's pods only (a spec.nodeName field
// selector). The grace clock of every candidate restarts whenever that watch
// fails or has not listed yet: a sweep decides only from a view that has been
// whole and current for the full grace period.

export interface IpamSweepOptions {
  kc: KubeConfig;
  log: Logger;
  registry: Registry;
  nodeName: string;
  ipamDir: string;
  podCidrs: () => string[];
  graceSeconds: number;
  intervalSeconds: number;
  onWatchError: (err: unknown) => void;
}

export function slimNodePod(p: V1Pod): V1Pod {
  return {
    metadata: { name: p.metadata?.name ?? "", namespace: p.metadata?.namespace ?? "" },
    status: { ...(p.status?.podIPs ? { podIPs: p.status.podIPs.map((i) => ({ ip: i.ip })) } : {}), ...(p.status?.podIP ? { podIP: p.status.podIP } : {}) },
  };
}

export function watchNodePods(kc: KubeConfig, log: Logger, nodeName: string, onError: (err: unknown) => void): ResourceWatch<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  const fieldSelector = `spec.nodeName=${nodeName}`;
  return watchResource<V1Pod>({
    kc,
    log,
    path: "/api/v1/pods",
    what: "node pod",
    params: { fieldSelector },
    listPage: (cont) => core.listPodForAllNamespaces({ fieldSelector, limit: 500, ...(cont ? { _continue: cont } : {}) }),
    slim: slimNodePod,
    onError,
  });
}

export class IpamSweeper {
  private readonly o: IpamSweepOptions;
  private readonly pods: ResourceWatch<V1Pod>;
  private candidates = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly released: Counter;
  private readonly waiting: Gauge;
  private readonly failures: Counter;

  constructor(o: IpamSweepOptions) {
    this.o = o;
    this.pods = watchNodePods(o.kc, o.log, o.nodeName, (err) => {
      this.candidates.clear();
      o.onWatchError(err);
    });
    this.released = new Counter({ name: "twill_ipam_released_total", help: "IPAM records the daemon's sweep released: addresses no live pod of this node held for the whole grace period", registers: [o.registry] });
    this.waiting = new Gauge({ name: "twill_ipam_leak_candidates", help: "IPAM records no live pod holds, waiting out the grace period before release", registers: [o.registry] });
    this.failures = new Counter({ name: "twill_ipam_sweep_errors_total", help: "IPAM sweeps that failed (unreadable data dir, lock timeout)", registers: [o.registry] });
  }

  start(): void {
    this.timer = setInterval(() => this.sweepOnce(), this.o.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.pods.stop();
  }

  /** The pod watch has listed: sweeps decide from here on. */
  ready(): boolean {
    return this.pods.synced();
  }

  /** status.podIPs of every pod bound to this node, as the watch has them. */
  livePodIps(): Set<string> {
    const ips = new Set<string>();
    for (const p of this.pods.list()) {
      for (const ip of p.status?.podIPs ?? []) if (ip.ip) ips.add(ip.ip);
      if (p.status?.podIP) ips.add(p.status.podIP);
    }
    return ips;
  }

  /** One sweep now; returns the addresses released. */
  sweepOnce(nowMs = Date.now()): string[] {
    const { log } = this.o;
    const podCidrs = this.o.podCidrs();
    if (!this.pods.synced() || podCidrs.length === 0) {
      this.candidates.clear();
      return [];
    }
    try {
      const livePodIps = this.livePodIps();
      const { plan, released } = sweepIpam(this.o.ipamDir, { livePodIps, podCidrs, nowMs, graceMs: this.o.graceSeconds * 1000, candidateSince: this.candidates });
      this.candidates = plan.candidateSince;
      this.waiting.set(plan.candidateSince.size);
      for (const r of released) {
        log.warn({ code: "IPAM_LEAK_RELEASED", ip: r.ip, network: r.network, containerId: r.containerId, ifname: r.ifname, allocatedAt: new Date(r.allocatedAtMs).toISOString() }, `released ${r.ip}: no pod on this node has held it for ${this.o.graceSeconds} s (its sandbox died without a CNI DEL)`);
      }
      this.released.inc(released.length);
      return released.map((r) => r.ip);
    } catch (err) {
      this.failures.inc();
      log.error({ code: (err as { code?: string }).code ?? "IPAM_SWEEP_FAILED", err: String(err) }, "IPAM sweep failed; nothing released, retrying at the next sweep");
      return [];
    }
  }
}
