import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  // Process and runtime figures an operator expects beside Twill's own: RSS,
  // heap, event-loop lag, and garbage-collection pauses by kind.
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    reconcileDuration: new Histogram({ name: "twill_reconcile_duration_seconds", help: "Time of one reconcile of the node's dataplane", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] }),
    reconcileErrors: new Counter({ name: "twill_reconcile_errors_total", help: "Reconciles that failed", registers: [registry] }),
    kernelChanges: new Counter({ name: "twill_kernel_changes_total", help: "Kernel objects written by reconciles", labelNames: ["kind"], registers: [registry] }),
    programmed: new Gauge({ name: "twill_programmed_objects", help: "Kernel objects Twill has programmed, by kind", labelNames: ["kind"], registers: [registry] }),
    watchErrors: new Counter({ name: "twill_apiserver_watch_errors_total", help: "Errors of the apiserver watch", registers: [registry] }),
    lastSync: new Gauge({ name: "twill_last_successful_sync_timestamp_seconds", help: "When the dataplane last matched the cluster view", registers: [registry] }),
    policyApply: new Histogram({ name: "twill_policy_apply_duration_seconds", help: "Time from a NetworkPolicy input change being seen to its nft transaction committed", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: [registry] }),
    policyReady: new Histogram({ name: "twill_policy_ready_seconds", help: "Time from a pod's CNI ADD (its address allocated) to its NetworkPolicy being in the kernel (fail-closed lifted)", buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
    proxyApply: new Histogram({ name: "twill_proxy_apply_duration_seconds", help: "Service proxy: time from a Service/EndpointSlice change being seen to its nft transaction committed", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: [registry] }),
    proxyServices: new Gauge({ name: "twill_proxy_service_ports", help: "Service proxy: Service ports programmed, and Services left out as invalid", labelNames: ["state"], registers: [registry] }),
    nodesSkipped: new Gauge({ name: "twill_nodes_skipped", help: "Nodes left out of the dataplane (no pod CIDR yet, broken annotations, a conflicting VTEP MAC)", registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
