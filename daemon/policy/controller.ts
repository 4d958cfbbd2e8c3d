import type { Logger } from "../../lib/log.ts";
import { parseCidr } from "../../lib/net/cidr.ts";
import type { Metrics } from "../health/metrics.ts";
import { describeNode, type DescribeOptions } from "./compile.ts";
import { NodeCompiler } from "./incremental.ts";
import { lintPolicy } from "./lint.ts";
import { PolicyTable } from "./nft.ts";
import type { ClusterState } from "./model.ts";
import { allocationTime } from "./pod-ready.ts";
import type { PolicyWatches } from "./watches.ts";

// NetworkPolicy on this node: on every change of pods, namespaces or
// policies, compile the table for this node's pods (incrementally: only pods
// whose inputs changed) and apply the difference from what is programmed in
// one atomic nft transaction (the first apply after start replaces the table
// whole, so a restart keeps the old one in force until then).
//
// Fail closed (default): an address of this node's pod CIDR passes only once
// it is in the `ready` set, i.e. once the pod's policies are in the kernel. A
// pod the CNI plugin has just attached talks to nobody until then; the time
// from its CNI ADD (the IPAM allocation record's mtime) to that moment is the
// twill_policy_ready_seconds histogram.

export interface PolicyControllerOptions {
  nodeName: string;
  watches: PolicyWatches;
  log: Logger;
  metrics: Metrics;
  failClosed: boolean;
  /** This node's pod CIDRs (empty until kube-controller-manager assigns them). */
  podCidrs: () => string[];
  /** The CNI IPAM data directory (one folder per network, one file per allocated address). */
  ipamDir: string;
}

export class PolicyController {
  private readonly o: PolicyControllerOptions;
  private readonly table = new PolicyTable();
  private readonly compiler = new NodeCompiler();
  private readonly linted = new Set<string>();
  private ready = new Set<string>();
  private readyKnown = false;
  private lastInputs = "";
  private readonly lintedPolicies = new WeakSet<object>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private again = false;
  private lastError = "";

  constructor(o: PolicyControllerOptions) {
    this.o = o;
  }

  start(): void {
    for (const src of this.sources()) src.onChange(() => this.schedule());
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const src of this.sources()) src.stop();
    this.table.close();
  }

  private sources() {
    return [this.o.watches.pods, this.o.watches.namespaces, this.o.watches.policies];
  }

  /** Coalesces a burst of events into one compile; events during a compile make one more. */
  private schedule(delayMs = 0): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, delayMs);
  }

  private failClosedOptions(localIps: string[], localIps6: string[]): DescribeOptions | undefined {
    if (!this.o.failClosed) return {};
    const cidrs = this.o.podCidrs();
    const cidr = cidrs.find((c) => parseCidr(c).family === 4);
    if (!cidr) return undefined;
    const cidr6 = cidrs.find((c) => parseCidr(c).family === 6);
    return { failClosed: { podCidr: cidr, ready: localIps, ...(cidr6 ? { podCidr6: cidr6, ready6: localIps6 } : {}) } };
  }

  private async sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    const { watches: w, log, metrics } = this.o;
    try {
      if (!w.pods.synced() || !w.namespaces.synced() || !w.policies.synced()) return;
      const t0 = performance.now();
      const state: ClusterState = { pods: w.pods.list(), namespaces: w.namespaces.list(), policies: w.policies.list() };
      const local = state.pods.filter((p) => p.spec?.nodeName === this.o.nodeName);
      const localIps = local.flatMap((p) => (p.status?.podIP && !p.status.podIP.includes(":") ? [p.status.podIP] : []));
      const localIps6 = local.flatMap((p) => (p.status?.podIPs ?? []).map((x) => x.ip).filter((ip) => ip.includes(":")));
      const opts = this.failClosedOptions(localIps, localIps6);
      if (!opts) {
        // No pod CIDR yet: nothing to fail closed on; look again shortly.
        this.schedule(1000);
        return;
      }
      this.lint(state);
      const inputs = `${w.pods.revision()}/${w.namespaces.revision()}`;
      const rules = this.compiler.compile(state, local, inputs !== this.lastInputs);
      this.lastInputs = inputs;
      const compiledMs = performance.now() - t0;
      const r = await this.table.apply(describeNode(rules, opts));
      this.observeReady(localIps);
      if (r.mode !== "none") {
        metrics.kernelChanges.inc({ kind: "policy" });
        metrics.programmed.set({ kind: "policy_pods" }, rules.length);
        metrics.policyApply.observe((performance.now() - t0) / 1000);
        log.info(
          { isolatedPods: rules.length, recompiled: this.compiler.lastStats.recompiled, policies: state.policies.length, mode: r.mode, commands: r.commands, compileMs: Math.round(compiledMs), ms: Math.round(performance.now() - t0) },
          "NetworkPolicy programmed",
        );
      }
      this.lastError = "";
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastError) log.error({ details: (err as { details?: string }).details }, msg);
      this.lastError = msg;
      this.schedule(200);
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  /** Pods that just became ready: how long after their CNI ADD (pods already there at start are not counted). */
  private observeReady(localIps: string[]): void {
    if (this.readyKnown) {
      const now = Date.now();
      for (const ip of localIps) {
        if (this.ready.has(ip)) continue;
        const added = allocationTime(this.o.ipamDir, ip);
        if (added !== undefined && now >= added) this.o.metrics.policyReady.observe((now - added) / 1000);
      }
    }
    this.ready = new Set(localIps);
    this.readyKnown = true;
  }

  /** Policy input Twill does not enforce (or that means nothing), logged once per policy version. */
  private lint(state: ClusterState): void {
    for (const p of state.policies) {
      if (this.lintedPolicies.has(p)) continue;
      this.lintedPolicies.add(p);
      for (const problem of lintPolicy(p)) {
        const key = `${p.metadata?.namespace}/${p.metadata?.name}/${problem}`;
        if (this.linted.has(key)) continue;
        this.linted.add(key);
        this.o.log.warn({ policy: `${p.metadata?.namespace}/${p.metadata?.name}` }, problem);
      }
    }
  }
}
