// The Twill node daemon: one per node. Wiring only; see agent.ts.
//   node daemon/main.ts --config /etc/twill/config.yaml [--node-name N] [--kubeconfig F] [--node-file F]
//     [--twill-binary /opt/twill/bin/twill] [--ipam-sweep-seconds 60] [--ipam-grace-seconds 900] [--config-poll-seconds 10]
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { CTL_SOCKET_NAME } from "../lib/ctl-api.ts";
import type { ApiContext } from "./api/context.ts";
import { DropLog, dropTotals } from "./api/drops.ts";
import { handleCtl, startCtlServer } from "./api/server.ts";
import { removeStaleTraceTable } from "./api/trace.ts";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { TwillError } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { DAEMON_SOCKET_NAME } from "../lib/node-file.ts";
import { Agent } from "./agent.ts";
import { backendFactory } from "./backends/registry.ts";
import { apiserverSink, DaemonEvents, EventRecorder } from "./cluster/events.ts";
import { watchNodes } from "./cluster/watch.ts";
import { removeEncryption, WireguardEncryption } from "./encryption/wireguard.ts";
import { loadConfig, nodeSettings } from "./config.ts";
import { sessionObserver } from "./health/bgp.ts";
import { cniObserver } from "./health/cni.ts";
import { DropAccounting, dropReader } from "./health/drops.ts";
import { ConfigWatch } from "./config-watch.ts";
import { IpamSweeper } from "./ipam/controller.ts";
import { createMetrics } from "./health/metrics.ts";
import { startHealthServer, startMetricsServer } from "./health/server.ts";
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
    "metrics-address": { type: "string" },
    "metrics-port": { type: "string" },
    "resync-seconds": { type: "string" },
    "ipam-dir": { type: "string" },
    "log-file": { type: "string" },
    "log-level": { type: "string", default: "info" },
    "twill-binary": { type: "string" },
    "ctl-socket": { type: "string" },
    "ctl-socket-group": { type: "string" },
    "wireguard-key-file": { type: "string" },
    "wireguard-run-dir": { type: "string" },
    "ipam-sweep-seconds": { type: "string" },
    "ipam-grace-seconds": { type: "string" },
    "config-poll-seconds": { type: "string" },
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
  const watch = watchNodes(kc, log, () => metrics.watchErrors.inc());
  // Events never wait for the apiserver (cluster/events.ts); Node events carry the node's UID from the watch.
  const nodeUid = (name: string) => watch.list().find((n) => n.metadata?.name === name)?.metadata?.uid;
  const recorder = new EventRecorder({ component: "twill-daemon", host: node.nodeName, sink: apiserverSink(kc), log, metrics });
  const events = new DaemonEvents(recorder, node.nodeName, nodeUid);
  const sessions = sessionObserver(metrics, events);
  const backend = makeBackend({ kc, log, onWatchError: () => metrics.watchErrors.inc(), twillBinary: node.twillBinary, sessions });
  // NetworkPolicy, when enabled in the ConfigMap.
  const podCidrs = () => {
    const self = watch.list().find((n) => n.metadata?.name === node.nodeName);
    return self?.spec?.podCIDRs ?? (self?.spec?.podCIDR ? [self.spec.podCIDR] : []);
  };
  const policy = cfg.policy
    ? new PolicyController({ nodeName: node.nodeName, watches: watchPolicyInputs(kc, log, () => metrics.watchErrors.inc()), log, metrics, failClosed: cfg.policyFailClosed, podCidrs, ipamDir: node.ipamDir, resyncSeconds: node.resyncSeconds, events })
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
  // The same notices carry the plugin's ADD/DEL timing and failures (health/cni.ts).
  const cni = cniObserver(metrics, (n) => {
    if (n.code === "IPAM_EXHAUSTED") events.ipamExhausted(`${n.pod.namespace}/${n.pod.name}`, podCidrs());
  });
  const notices = policy ? await startNoticeServer(join(dirname(node.nodeFile), DAEMON_SOCKET_NAME), (n) => cni.handle(n, (x) => policy.notice(x)), log) : undefined;
  if (cfg.encryption.mode === "none") await removeEncryption(log);
  const encryption = cfg.encryption.mode === "wireguard" ? new WireguardEncryption(cfg.encryption.wireguard, { keyFile: node.wireguardKeyFile, runDir: node.wireguardRunDir }, kc, log) : undefined;
  const agent = new Agent({ cfg, node, kc, backend, watch, log, metrics, events, ...(encryption ? { encryption } : {}), ...(notices ? { daemonSocket: DAEMON_SOCKET_NAME } : {}) });
  // The operator API (twillctl): its own unix socket beside the node file, and read-only on the health port.
  const drops = policy ? new DropLog(node.nodeName, () => policy.inputs(), log) : undefined;
  drops?.start();
  // The same per-pod drop counters as metrics, read when Prometheus scrapes (health/drops.ts).
  if (policy) {
    const accounting = new DropAccounting(metrics);
    let lastError = "";
    metrics.scrapeHooks.push(
      dropReader(accounting, () => dropTotals(["nft"], policy.inputs(), node.nodeName, true), (err) => {
        const msg = String((err as Error).message ?? err);
        if (msg !== lastError) log.warn({ code: "DROP_COUNTERS", details: msg }, "reading the NetworkPolicy drop counters failed; the drop metrics keep their last values");
        lastError = msg;
      }),
    );
  }
  const core = kc.makeApiClient(CoreV1Api);
  const api: ApiContext = {
    nodeName: node.nodeName,
    version: (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version,
    backend: { name: backend.name, ...(backend.sessions ? { sessions: () => backend.sessions!() } : {}) },
    agent,
    ...(policy ? { policy } : {}),
    podsOnNode: async () => {
      const listed = policy?.inputs()?.pods;
      if (listed) return listed.filter((p) => p.spec?.nodeName === node.nodeName);
      return (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node.nodeName}` })).items;
    },
    ipamDir: node.ipamDir,
    kc,
    log,
    ...(drops ? { drops } : {}),
    nft: ["nft"],
  };
  removeStaleTraceTable(api);
  // Without its socket the operator API is missing, but the node's networking is not: logged, and the daemon goes on.
  const ctlServer = await startCtlServer(values["ctl-socket"] ?? join(dirname(node.nodeFile), CTL_SOCKET_NAME), api, values["ctl-socket-group"] ? { group: Number(values["ctl-socket-group"]) } : {}).catch((err: TwillError) => {
    log.error({ code: err.code, details: err.details }, err.message);
    return undefined;
  });
  // Ready once the dataplane is programmed and, with the proxy on, Services too: a rolling update (or a
  // migration from kube-proxy) moves to the next node only when this one proxies.
  const health = { live: () => agent.live(), ready: () => agent.ready() && (proxy?.programmed() ?? true) };
  await startHealthServer(node.healthAddress, node.healthPort, health, metrics, (req, res) => handleCtl(api, req, res, "tcp"));
  // Metrics alone where Prometheus can reach them; the health port keeps the operator API (docs/observability.md).
  // Its failure (the port taken) costs the metrics, never the node's networking: logged, and the daemon goes on.
  if (node.metricsPort) {
    await startMetricsServer(node.metricsAddress, node.metricsPort, metrics).catch((err: Error) =>
      log.error({ code: "METRICS_LISTEN", details: err.message }, `cannot serve metrics on ${node.metricsAddress}:${node.metricsPort}; the daemon goes on without that listener`),
    );
  }
  agent.start();
  policy?.start();
  proxy?.start();
  lbAllocator?.start();
  // The config file at run time (config-watch.ts) and the IPAM sweep (ipam/): both only report or free leaks.
  const configWatch = new ConfigWatch({ path: values.config, running: cfg, pollSeconds: node.configPollSeconds, log, registry: metrics.registry, events, validate: (c) => void backendFactory(c) });
  configWatch.start();
  const sweeper = node.ipamSweepSeconds > 0
    ? new IpamSweeper({ kc, log, registry: metrics.registry, nodeName: node.nodeName, ipamDir: node.ipamDir, podCidrs, graceSeconds: node.ipamGraceSeconds, intervalSeconds: node.ipamSweepSeconds, onWatchError: () => metrics.watchErrors.inc() })
    : undefined;
  sweeper?.start();
  log.info({ node: node.nodeName, backend: backend.name, encryption: cfg.encryption.mode, clusterCIDR: cfg.clusterCIDR, serviceProxy: cfg.serviceProxy }, "twill daemon started");
  const shutdown = () => {
    // Leave the dataplane as it is: pods keep working while the daemon is away.
    agent.stop();
    recorder.stop();
    configWatch.stop();
    sweeper?.stop();
    notices?.close();
    ctlServer?.close();
    drops?.stop();
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
