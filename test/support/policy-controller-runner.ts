import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { pino } from "pino";
import { createInterface } from "node:readline";
import type { ResourceWatch } from "../../daemon/cluster/resource-watch.ts";
import { createMetrics } from "../../daemon/health/metrics.ts";
import { PolicyController } from "../../daemon/policy/controller.ts";
import { startNoticeServer } from "../../daemon/policy/notice-server.ts";

// The daemon's PolicyController in a test namespace (nft works on the
// namespace its process runs in): run under `ip netns exec NS`, it reads one
// JSON line (the cluster's objects, this node's pod CIDRs, the resync
// period), starts the controller on watches that hold those objects, and
// writes the controller's log lines to stdout as JSON. Each further stdin
// line is a watch event.

export interface PolicyControllerSetup {
  nodeName: string;
  pods: V1Pod[];
  namespaces: V1Namespace[];
  policies: V1NetworkPolicy[];
  podCidrs: string[];
  resyncSeconds: number;
  /** When set: serve the CNI plugin's pod notices on this unix socket, as the daemon does. */
  socket?: string;
}

const listeners: (() => void)[] = [];
function fixed<T>(items: T[]): ResourceWatch<T> {
  return { list: () => items, onChange: (fn) => void listeners.push(fn), synced: () => true, revision: () => 1, stop: () => {} };
}

let controller: PolicyController | undefined;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  if (!controller) {
    const o = JSON.parse(line) as PolicyControllerSetup;
    const log = pino({ level: "info" }, pino.destination({ dest: 1, sync: true }));
    controller = new PolicyController({
      nodeName: o.nodeName,
      watches: { pods: fixed(o.pods), namespaces: fixed(o.namespaces), policies: fixed(o.policies) },
      log,
      metrics: createMetrics(),
      failClosed: true,
      podCidrs: () => o.podCidrs,
      ipamDir: "/nonexistent/twill-ipam",
      resyncSeconds: o.resyncSeconds,
    });
    controller.start();
    const c = controller;
    if (o.socket) await startNoticeServer(o.socket, (n) => c.notice(n), log);
  }
  for (const fn of listeners) fn();
}
controller?.stop();
