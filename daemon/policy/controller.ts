import type { Logger } from "../../lib/log.ts";
import type { Metrics } from "../health/metrics.ts";
import { compileNode, describeNode } from "./compile.ts";
import { PolicyTable } from "./nft.ts";
import type { ClusterState } from "./model.ts";
import type { PolicyWatches } from "./watches.ts";

// NetworkPolicy on this node: on every change of pods, namespaces or
// policies, compile the table for this node's pods and apply the difference
// from what is programmed in one atomic nft transaction (the first apply after
// start replaces the table whole, so a restart keeps the old one in force
// until then).

export class PolicyController {
  private readonly nodeName: string;
  private readonly w: PolicyWatches;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly table = new PolicyTable();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private again = false;
  private lastError = "";

  constructor(nodeName: string, watches: PolicyWatches, log: Logger, metrics: Metrics) {
    this.nodeName = nodeName;
    this.w = watches;
    this.log = log;
    this.metrics = metrics;
  }

  start(): void {
    for (const src of [this.w.pods, this.w.namespaces, this.w.policies]) src.onChange(() => this.schedule());
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const src of [this.w.pods, this.w.namespaces, this.w.policies]) src.stop();
  }

  /** Coalesces bursts of events into one compile. */
  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, 20);
  }

  private async sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      if (!this.w.pods.synced() || !this.w.namespaces.synced() || !this.w.policies.synced()) return;
      const t0 = performance.now();
      const state: ClusterState = { pods: this.w.pods.list(), namespaces: this.w.namespaces.list(), policies: this.w.policies.list() };
      const local = state.pods.filter((p) => p.spec?.nodeName === this.nodeName);
      const rules = compileNode(state, local);
      const r = await this.table.apply(describeNode(rules));
      if (r.mode !== "none") {
        this.metrics.kernelChanges.inc({ kind: "policy" });
        this.metrics.programmed.set({ kind: "policy_pods" }, rules.length);
        this.log.info({ isolatedPods: rules.length, policies: state.policies.length, mode: r.mode, commands: r.commands, ms: Math.round(performance.now() - t0) }, "NetworkPolicy programmed");
      }
      this.lastError = "";
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastError) this.log.error({ details: (err as { details?: string }).details }, msg);
      this.lastError = msg;
      this.schedule();
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }
}
