import type { Logger } from "../../lib/log.ts";
import { parseCidr } from "../../lib/net/cidr.ts";
import type { DaemonEvents } from "../cluster/events.ts";
import type { Metrics } from "../health/metrics.ts";
import { describeNode, type DescribeOptions, type NftDescription } from "./compile.ts";
import { NodeCompiler } from "./incremental.ts";
import { lintPolicy } from "./lint.ts";
import { PolicyTable } from "./nft.ts";
import type { ClusterState } from "./model.ts";
import type { Notice, NoticeReply } from "../../lib/pod-notice.ts";
import { PodNotices } from "./notices.ts";
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
// twill_policy_ready_seconds histogram. The CNI plugin tells the daemon a
// new pod's addresses during ADD and waits for the apply that holds them
// (notices.ts), so kubelet cannot report the pod Ready while it is still
// dropped; the status, written later, wins.
//
// Twill owns the table, so what the kernel holds is checked every resync
// period against what was last programmed (PolicyTable.verify): a deleted
// table, chain or element, or a rule someone added, makes the next apply a
// whole replace, logged once as POLICY_TABLE_DRIFT. Event-driven applies
// never read the kernel.

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
  /** The daemon's resync period: how often the kernel's table is verified. */
  resyncSeconds: number;
  /** Kubernetes Events (policy input Twill cannot enforce). */
  events?: DaemonEvents;
}

/**
 * A full check (every rule and element, see PolicyTable.verify) waits at
 * least this many times its own last duration after the previous one, so it
 * takes at most ~3% of the wall clock: at the lab's scale (tens of elements,
 * ~30 ms) every resync, at bench:policy's (182,000 elements, 3–5 s on a
 * quiet node) about every 2 minutes, later on a loaded node. The quick check
 * (30–70 ms there) runs every resync.
 */
const FULL_CHECK_SPACING = 30;

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
  private resync: NodeJS.Timeout | undefined;
  /** Set by the resync timer: once an apply is done, verify the kernel's table. */
  private verifyDue = false;
  private verifying = false;
  private lastFullCheck = 0;
  private fullCheckMs = 0;
  private lastVerifyError = "";
  private readonly notices: PodNotices;

  constructor(o: PolicyControllerOptions) {
    this.o = o;
    this.notices = new PodNotices(o.nodeName, () => this.schedule());
  }

  /**
   * A pod notice from the CNI plugin (notices.ts): an "add" is answered once
   * an apply has put the pod's addresses in the kernel, or shortly before the
   * plugin stops waiting. Never rejects.
   */
  notice(n: Notice): Promise<NoticeReply> {
    // Answer 100 ms before the plugin gives up, so it logs the reason rather than a timeout.
    const waitMs = Math.max(50, (n.op === "add" ? (n.waitMs ?? 2000) : 0) - 100);
    return this.notices.handle(n, waitMs);
  }

  /** The cluster as the compiler sees it (pods, namespaces, policies), once all three are listed: for the operator API. */
  inputs(): ClusterState | undefined {
    const w = this.o.watches;
    if (!w.pods.synced() || !w.namespaces.synced() || !w.policies.synced()) return undefined;
    return { pods: this.notices.view(w.pods.list(), this.o.podCidrs()), namespaces: w.namespaces.list(), policies: w.policies.list() };
  }

  /** The table as last programmed (undefined before the first apply). */
  programmed(): NftDescription | undefined {
    return this.table.current();
  }

  start(): void {
    for (const src of this.sources()) src.onChange(() => this.schedule());
    this.resync = setInterval(() => {
      this.verifyDue = true;
      this.schedule();
    }, this.o.resyncSeconds * 1000);
  }

  stop(): void {
    if (this.resync) clearInterval(this.resync);
    if (this.timer) clearTimeout(this.timer);
    for (const src of this.sources()) src.stop();
    this.notices.close();
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
      const state: ClusterState = { pods: this.notices.view(w.pods.list(), this.o.podCidrs()), namespaces: w.namespaces.list(), policies: w.policies.list() };
      const local = state.pods.filter((p) => p.spec?.nodeName === this.o.nodeName);
      const localIps = local.flatMap((p) => (p.status?.podIP && !p.status.podIP.includes(":") ? [p.status.podIP] : []));
      const localIps6 = local.flatMap((p) => (p.status?.podIPs ?? []).map((x) => x.ip).filter((ip) => ip.includes(":")));
      metrics.watched.set({ resource: "pods" }, state.pods.length);
      metrics.watched.set({ resource: "namespaces" }, state.namespaces.length);
      metrics.watched.set({ resource: "networkpolicies" }, state.policies.length);
      const opts = this.failClosedOptions(localIps, localIps6);
      if (!opts) {
        // No pod CIDR yet: nothing to fail closed on; look again shortly.
        this.schedule(1000);
        return;
      }
      this.lint(state);
      const inputs = `${w.pods.revision()}/${w.namespaces.revision()}/${this.notices.revision}`;
      const rules = this.compiler.compile(state, local, inputs !== this.lastInputs);
      this.lastInputs = inputs;
      const compiledMs = performance.now() - t0;
      const r = await this.table.apply(describeNode(rules, opts));
      this.observeReady(localIps);
      if (this.notices.pending() > 0) this.notices.programmed(new Set([...localIps, ...localIps6]));
      if (this.verifyDue) {
        this.verifyDue = false;
        void this.verifyTable();
      }
      metrics.reconcileDuration.observe({ controller: "policy" }, (performance.now() - t0) / 1000);
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
      metrics.reconcileErrors.inc({ controller: "policy" });
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

  /**
   * Compares the kernel's table with what was programmed, beside applies
   * (a stale answer is dropped). On drift, forgets: the apply it schedules
   * replaces the table whole, atomically.
   */
  private async verifyTable(): Promise<void> {
    if (this.verifying) return;
    this.verifying = true;
    const t0 = performance.now();
    const full = Date.now() - this.lastFullCheck >= Math.max(this.o.resyncSeconds * 1000, FULL_CHECK_SPACING * this.fullCheckMs);
    try {
      const drift = await this.table.verify(full);
      if (full) {
        this.lastFullCheck = Date.now();
        this.fullCheckMs = performance.now() - t0;
      }
      this.lastVerifyError = "";
      if (!drift?.length) return;
      this.o.log.warn(
        { code: "POLICY_TABLE_DRIFT", check: full ? "full" : "quick", differences: drift.length, drift: drift.slice(0, 10) },
        "the NetworkPolicy table in the kernel is not what Twill programmed; replacing it whole",
      );
      this.o.metrics.kernelChanges.inc({ kind: "policy_drift" });
      this.table.forget();
      this.schedule();
    } catch (err) {
      // Logged once; the next resync tries again.
      const msg = (err as Error).message;
      if (msg !== this.lastVerifyError) this.o.log.error({ code: (err as { code?: string }).code, details: (err as { details?: string }).details }, msg);
      this.lastVerifyError = msg;
    } finally {
      this.verifying = false;
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
        this.o.events?.policyUnsupported({ namespace: p.metadata?.namespace ?? "default", name: p.metadata?.name ?? "", ...(p.metadata?.uid ? { uid: p.metadata.uid } : {}) }, problem);
      }
    }
  }
}
