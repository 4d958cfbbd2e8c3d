import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

// Every series the daemon exports (docs/observability.md lists them with
// their label bounds). Labels only take values from sets the daemon bounds:
// controller and kind names from the code, peers from the configuration,
// error codes from the code (checked on the wire, lib/pod-notice.ts), pods
// from drops.ts's cap.

/** Seconds; from a fast reconcile of a small node to a bench-sized policy table. */
const RECONCILE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds; a CNI command takes 5–50 ms here, longer while the daemon's fail-closed handshake waits. */
const CNI_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics() {
  const registry = new Registry();
  // Process and runtime figures an operator expects beside Twill's own: RSS,
  // heap, event-loop lag, and garbage-collection pauses by kind.
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  const m = {
    registry,
    /** Run (concurrently, bounded in time) before each scrape: readings taken only when someone looks (drops.ts). */
    scrapeHooks: [] as (() => Promise<void>)[],
    reconcileDuration: new Histogram({ name: "twill_reconcile_duration_seconds", help: "Time of one reconcile pass, by controller (dataplane: routes, neighbours, FDB, masquerade; policy: the NetworkPolicy table; proxy: the service proxy's table)", labelNames: ["controller"], buckets: RECONCILE_BUCKETS, registers: r }),
    reconcileErrors: new Counter({ name: "twill_reconcile_errors_total", help: "Reconcile passes that failed, by controller", labelNames: ["controller"], registers: r }),
    kernelChanges: new Counter({ name: "twill_kernel_changes_total", help: "Kernel objects written by reconciles", labelNames: ["kind"], registers: r }),
    programmed: new Gauge({ name: "twill_programmed_objects", help: "Kernel objects Twill has programmed, by kind", labelNames: ["kind"], registers: r }),
    watched: new Gauge({ name: "twill_watched_objects", help: "Objects in the daemon's apiserver caches, by resource", labelNames: ["resource"], registers: r }),
    watchErrors: new Counter({ name: "twill_apiserver_watch_errors_total", help: "Errors of the apiserver watch", registers: r }),
    lastSync: new Gauge({ name: "twill_last_successful_sync_timestamp_seconds", help: "When the dataplane last matched the cluster view", registers: r }),
    policyApply: new Histogram({ name: "twill_policy_apply_duration_seconds", help: "Time from a NetworkPolicy input change being seen to its nft transaction committed", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: r }),
    policyReady: new Histogram({ name: "twill_policy_ready_seconds", help: "Time from a pod's CNI ADD (its address allocated) to its NetworkPolicy being in the kernel (fail-closed lifted)", buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: r }),
    policyDrops: new Counter({ name: "twill_policy_dropped_packets_total", help: "Packets NetworkPolicy dropped at this node's isolated pods, by direction (all pods)", labelNames: ["direction"], registers: r }),
    policyPodDrops: new Counter({ name: "twill_policy_pod_dropped_packets_total", help: "Packets NetworkPolicy dropped, per isolated pod of this node and direction; pods past the per-node cap count under pod=\"_other\"", labelNames: ["namespace", "pod", "direction"], registers: r }),
    nodesSkipped: new Gauge({ name: "twill_nodes_skipped", help: "Nodes left out of the dataplane (no pod CIDR yet, broken annotations, a conflicting VTEP MAC)", registers: r }),
    cniDuration: new Histogram({ name: "twill_cni_duration_seconds", help: "CNI command time on this node as the plugin reports it: from the plugin's start to the daemon's answer (ADD) or to its notice (DEL)", labelNames: ["command"], buckets: CNI_BUCKETS, registers: r }),
    cniErrors: new Counter({ name: "twill_cni_errors_total", help: "CNI commands that failed on this node, by command and Twill error code", labelNames: ["command", "code"], registers: r }),
    bgpSessionUp: new Gauge({ name: "twill_bgp_session_up", help: "1 while the BGP session with the peer is Established, else 0", labelNames: ["peer"], registers: r }),
    bgpSessionChanges: new Counter({ name: "twill_bgp_session_transitions_total", help: "BGP session state changes, by peer and the state entered", labelNames: ["peer", "state"], registers: r }),
    bgpPrefixesReceived: new Gauge({ name: "twill_bgp_prefixes_received", help: "Best routes learned from the peer", labelNames: ["peer"], registers: r }),
    bgpPrefixesAdvertised: new Gauge({ name: "twill_bgp_prefixes_advertised", help: "Prefixes this node announces (its pod CIDRs, and Service addresses when the service proxy advertises them)", registers: r }),
    events: new Counter({ name: "twill_events_total", help: "Kubernetes Events the daemon wrote, by reason and outcome (created, exists: another daemon wrote it, patched: a repeat counted, dropped: rate-limited, failed)", labelNames: ["reason", "outcome"], registers: r }),
    proxyApply: new Histogram({ name: "twill_proxy_apply_duration_seconds", help: "Service proxy: time from a Service/EndpointSlice change being seen to its nft transaction committed", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: r }),
    proxyServices: new Gauge({ name: "twill_proxy_service_ports", help: "Service proxy: Service ports programmed, and Services left out as invalid", labelNames: ["state"], registers: r }),
  };
  // Series of known label values start at 0, so a rate over them is 0, not absent, until the first error or drop.
  for (const controller of ["dataplane", "policy"]) m.reconcileErrors.inc({ controller }, 0);
  // (controller="proxy" appears once the service proxy runs: it is off by default.)
  for (const direction of ["ingress", "egress"]) m.policyDrops.inc({ direction }, 0);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
