// The Twill node daemon: one per node. Wiring only; see agent.ts.
//   node daemon/main.ts --config /etc/twill/config.yaml [--node-name N] [--kubeconfig F] [--node-file F]
//     [--twill-binary /opt/twill/bin/twill]
import { KubeConfig } from "@kubernetes/client-node";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { TwillError } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { DAEMON_SOCKET_NAME } from "../lib/node-file.ts";
import { Agent } from "./agent.ts";
import { backendFactory } from "./backends/registry.ts";
import { watchNodes } from "./cluster/watch.ts";
import { loadConfig, nodeSettings } from "./config.ts";
import { createMetrics } from "./health/metrics.ts";
import { startHealthServer } from "./health/server.ts";
import { PolicyController } from "./policy/controller.ts";
import { startNoticeServer } from "./policy/notice-server.ts";
import { watchPolicyInputs } from "./policy/watches.ts";
import { ServiceProxy } from "./proxy/controller.ts";
import { removeProxyTable } from "./proxy/disabled.ts";
import { LoadBalancerAllocator } from "./proxy/lb-allocator.ts";
import { watchProxyInputs } from "./proxy/watches.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "/etc/twill/config.yaml" },
    "node-name": { type: "string" },
    kubeconfig: { type: "string" },
    "node-file": { type: "string" },
    "health-address": { type: "string" },
    "health-port": { type: "string" },
    "resync-seconds": { type: "string" },
    "ipam-dir": { type: "string" },
    "log-file": { type: "string" },
    "log-level": { type: "string", default: "info" },
    "twill-binary": { type: "string" },
  },
});
const log = createLogger({ name: "twill-daemon", level: values["log-level"], ...(values["log-file"] ? { file: values["log-file"] } : {}) });

try {
  const cfg = loadConfig(values.config);
  // Before the kubeconfig: a config error is reported as such, whatever else is missing.
  const makeBackend = backendFactory(cfg);
  const node = nodeSettings(values, process.env);
  const kc = new KubeConfig();
  if (node.kubeconfig) kc.loadFromFile(node.kubeconfig);
  else kc.loadFromCluster();
  const metrics = createMetrics();
  const backend = makeBackend({ kc, log, onWatchError: () => metrics.watchErrors.inc(), twillBinary: node.twillBinary });
  const watch = watchNodes(kc, log, () => metrics.watchErrors.inc());
  // NetworkPolicy, when enabled in the ConfigMap.
  const podCidrs = () => {
    const self = watch.list().find((n) => n.metadata?.name === node.nodeName);
    return self?.spec?.podCIDRs ?? (self?.spec?.podCIDR ? [self.spec.podCIDR] : []);
  };
  const policy = cfg.policy
    ? new PolicyController({ nodeName: node.nodeName, watches: watchPolicyInputs(kc, log, () => metrics.watchErrors.inc()), log, metrics, failClosed: cfg.policyFailClosed, podCidrs, ipamDir: node.ipamDir, resyncSeconds: node.resyncSeconds })
    : undefined;
  // The service proxy, when enabled in the ConfigMap (kube-proxy removed).
  const proxyWatches = cfg.serviceProxy ? watchProxyInputs(kc, log, () => metrics.watchErrors.inc()) : undefined;
  // bgp.advertiseServices: the backend announces what the proxy serves (a backend without routes to announce has no advertise).
  const onAdvertise = cfg.bgp?.advertiseServices && backend.advertise ? (p: string[]) => backend.advertise!(p) : undefined;
  const proxy = proxyWatches ? new ServiceProxy({ nodeName: node.nodeName, watches: proxyWatches, nodes: watch, clusterCIDR: cfg.clusterCIDR, log, resyncSeconds: node.resyncSeconds, ...(onAdvertise ? { onAdvertise } : {}), metrics }) : undefined;
  // LoadBalancer addresses from Twill's pools, with the proxy that answers them.
  const lbAllocator = proxyWatches ? new LoadBalancerAllocator({ kc, nodeName: node.nodeName, nodes: watch, services: proxyWatches.services, log, onWatchError: () => metrics.watchErrors.inc() }) : undefined;
  if (!proxy) await removeProxyTable(log);
  // The CNI plugin's pod notices (policy/notices.ts), beside the node file that names the socket; before the
  // agent writes that file, so the plugin never finds a socket named that nobody serves.
  const notices = policy ? await startNoticeServer(join(dirname(node.nodeFile), DAEMON_SOCKET_NAME), (n) => policy.notice(n), log) : undefined;
  const agent = new Agent({ cfg, node, kc, backend, watch, log, metrics, ...(notices ? { daemonSocket: DAEMON_SOCKET_NAME } : {}) });
  // Ready once the dataplane is programmed and, with the proxy on, Services too: a rolling update (or a
  // migration from kube-proxy) moves to the next node only when this one proxies.
  await startHealthServer(node.healthAddress, node.healthPort, { live: () => agent.live(), ready: () => agent.ready() && (proxy?.programmed() ?? true) }, metrics);
  agent.start();
  policy?.start();
  proxy?.start();
  lbAllocator?.start();
  log.info({ node: node.nodeName, backend: backend.name, clusterCIDR: cfg.clusterCIDR, serviceProxy: cfg.serviceProxy }, "twill daemon started");
  const shutdown = () => {
    // Leave the dataplane as it is: pods keep working while the daemon is away.
    agent.stop();
    notices?.close();
    policy?.stop();
    proxy?.stop();
    lbAllocator?.stop();
    log.info({}, "twill daemon stopped; dataplane left in place");
    process.exit(0);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
} catch (err) {
  // A configuration error stops the daemon before it touches anything, with one line.
  const e = err as TwillError;
  log.fatal({ code: e.code ?? "STARTUP_FAILED", details: e.details }, e.message);
  process.exit(1);
}
