import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { underlayKubeconfig } from "../kube.ts";
import { issue, type Pki } from "../pki.ts";
import { startIn, tail, type LabProcess } from "../process.ts";

// kube-proxy on every kubelet node, as the per-node process a node's service
// manager would run (kubeadm runs it as a DaemonSet; nothing about Services
// changes with that, and a process starts before any pod can, so CoreDNS and
// Twill's DaemonSet find Services working the moment they come up). It runs in
// the node's network and mount namespaces next to kubelet, so its nftables or
// iptables rules live in that node's kernel view only.
//
// Identity: a client certificate for CN=system:kube-proxy, the user bootstrap
// RBAC binds to ClusterRole system:node-proxier (list/watch Services,
// EndpointSlices, Nodes; write Events) — exactly what a kubeadm node has.

/** kube-proxy's modes, or "twill": no kube-proxy, Twill's daemon proxies Services (serviceProxy: true, daemon/proxy). */
export type ProxyMode = "nftables" | "iptables" | "twill";
export const PROXY_MODES: readonly ProxyMode[] = ["nftables", "iptables"];
export const TWILL_PROXY = "twill";
/** Whether kube-proxy runs at all in this mode. */
export const runsKubeProxy = (mode: ProxyMode) => mode !== TWILL_PROXY;

/** kube-proxy's healthz port (upstream's default), served on the node's own address. */
export const KUBE_PROXY_HEALTHZ_PORT = 10256;

export interface KubeProxyNode {
  name: string;
  ip: string;
  dir: string;
}

export interface KubeProxyFiles {
  config: string;
  kubeconfig: string;
  log: string;
}

/**
 * Why each setting:
 * - mode: nftables (kube-proxy's newest backend; the kernel here has nat, ct, numgen, fib) or iptables
 *   (iptables-nft on this machine). There is no IPVS in this kernel.
 * - hostnameOverride = the Node's name: Local traffic policies and topology compare EndpointSlices' nodeName
 *   with it.
 * - bindAddress / healthzBindAddress on the node's address: the health check a load balancer (and the lab)
 *   calls; metrics on loopback only.
 * - clusterCIDR with detectLocalMode ClusterCIDR: traffic from pods is "local" (no masquerade towards a
 *   ClusterIP: an endpoint sees the client pod's own address), traffic from anywhere else is masqueraded.
 * - conntrack.maxPerCore: 0 and min: 0: leave nf_conntrack_max (and the nf_conntrack hashsize module
 *   parameter it would raise with it) alone — both are machine-wide, shared by every namespace on this
 *   machine. The TCP timeouts kube-proxy sets (established 24 h, close-wait 1 h) stay at its defaults: those
 *   net.netfilter sysctls belong to the node's network namespace.
 * - oomScoreAdj: 0: kube-proxy's -999 cannot be set without CAP_SYS_RESOURCE, which this machine lacks.
 * - minSyncPeriod (only when given): the mode's rate limit between syncs; upstream's default is 1 s,
 *   bench:services also runs it at 0 (kube-proxy at its fastest).
 */
export function kubeProxyConfig(n: KubeProxyNode, kubeconfig: string, mode: ProxyMode, clusterCIDR: string, minSyncPeriod?: string): string {
  const tuning = minSyncPeriod === undefined ? "" : `${mode}:\n  minSyncPeriod: ${minSyncPeriod}\n`;
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${kubeconfig}
hostnameOverride: ${n.name}
bindAddress: ${n.ip}
healthzBindAddress: ${n.ip}:${KUBE_PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:10249
mode: ${mode}
clusterCIDR: ${clusterCIDR}
detectLocalMode: ClusterCIDR
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
${tuning}`;
}

export async function writeKubeProxyFiles(pki: Pki, n: KubeProxyNode, mode: ProxyMode, clusterCIDR: string, minSyncPeriod?: string): Promise<KubeProxyFiles> {
  const dir = join(n.dir, "kube-proxy");
  mkdirSync(dir, { recursive: true });
  const cert = await issue(pki, { name: `kube-proxy-${n.name}`, commonName: "system:kube-proxy", usage: "client" });
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, underlayKubeconfig(pki.ca, "kube-proxy", `{client-certificate: "${cert.cert}", client-key: "${cert.key}"}`), { mode: 0o600 });
  const config = join(dir, "config.yaml");
  writeFileSync(config, kubeProxyConfig(n, kubeconfig, mode, clusterCIDR, minSyncPeriod));
  return { config, kubeconfig, log: join(n.dir, "kube-proxy.log") };
}

/** In the node's network namespace; in its mount namespace too when it has one (a kubelet node). */
export function startKubeProxy(bin: string, netns: string, mountNs: string | undefined, n: KubeProxyNode, f: KubeProxyFiles): LabProcess {
  return startIn(netns, `kube-proxy on ${n.name}`, [...(mountNs ? [`--mount=${mountNs}`] : []), join(bin, "kube-proxy"), `--config=${f.config}`, "--v=1"], f.log);
}

/** kube-proxy's /healthz answers 200 once it has programmed the node's rules from the API at least once. */
export async function waitKubeProxyHealthy(netns: string, n: KubeProxyNode, p: LabProcess, timeoutMs = 60_000): Promise<void> {
  const url = `http://${n.ip}:${KUBE_PROXY_HEALTHZ_PORT}/healthz`;
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (p.exited()) throw new TwillError("LAB_KUBE_PROXY", `kube-proxy on ${n.name} exited; see ${p.log}`, tail(p.log, 25));
    const r = await execIn(netns, ["curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", url], { allowFailure: true });
    if (r.stdout.trim() === "200") return;
    last = r.stdout.trim();
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new TwillError("LAB_KUBE_PROXY", `kube-proxy on ${n.name} was not healthy within ${timeoutMs / 1000} s (${url}: ${last || "no answer"})`, tail(p.log, 25));
}

/** The proxy's rules on a node, as text: kube-proxy's nftables table or the iptables-nft nat table, or Twill's table. */
export async function proxyRules(netns: string, mode: ProxyMode): Promise<string> {
  const argv = mode === "twill" ? ["nft", "list", "table", "inet", "twill-proxy"] : mode === "nftables" ? ["nft", "list", "table", "ip", "kube-proxy"] : ["iptables-nft-save", "-t", "nat"];
  return (await execIn(netns, argv, { allowFailure: true })).stdout;
}

/**
 * An endpoint as the proxy's DNAT names it: kube-proxy's nftables mode maps to `ip . port` (numgen into a map),
 * iptables to `ip:port`; Twill's rules end in `dnat ip to ip:port`.
 */
export const dnatTargets = (mode: ProxyMode, ip: string, port: number): string[] => (mode === "twill" ? [`dnat ip to ${ip}:${port}\n`] : mode === "nftables" ? [`${ip} . ${port}`] : [`${ip}:${port}`]);

/** Whether a listing of the proxy's rules (proxyRules) DNATs to this endpoint. */
export const programsEndpoint = (rules: string, mode: ProxyMode, ip: string, port: number) => dnatTargets(mode, ip, port).some((t) => rules.includes(t));

/**
 * Waits until every node's kube-proxy has programmed these endpoints. A Deployment is Available once its pods
 * are Ready; kube-proxy writes their rules a sync later, so the lab's first Service probe would otherwise race it.
 */
export async function waitEndpointsProgrammed(nodes: { name: string; ns: string }[], mode: ProxyMode, endpoints: { ip: string; port: number }[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const n of nodes) {
    for (;;) {
      const rules = await proxyRules(n.ns, mode);
      const missing = endpoints.filter((e) => !programsEndpoint(rules, mode, e.ip, e.port)).map((e) => `${e.ip}:${e.port}`);
      if (!missing.length) break;
      if (Date.now() > deadline) throw new TwillError("LAB_KUBE_PROXY", `the Service proxy on ${n.name} did not program ${missing.join(", ")} within ${timeoutMs / 1000} s`, rules.slice(0, 3000));
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
