import { join } from "node:path";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { exec, type ExecResult } from "../lib/kernel/exec.ts";
import { execIn } from "../lib/kernel/netns.ts";
import type { LabNode, LabPod } from "./cluster.ts";
import { ECHO_LABELS, ECHO_NAMESPACE, ECHO_NODEPORT_CLUSTER, ECHO_NODEPORT_LOCAL, ECHO_PORT } from "./addons/echo.ts";
import { ECHO_PATH } from "./kubelet/images.ts";
import { renderTable } from "./matrix.ts";
import { CLUSTER_DOMAIN, KUBERNETES_SERVICE_IP, ROUTER_IP, routerNs } from "./names.ts";

// The Service matrices of a real-cluster lab (kube-proxy and CoreDNS running):
// (a) from inside every lab pod, with the pod's own resolver (kubelet's
//     resolv.conf → the kube-dns Service → CoreDNS), `kubernetes.default` by
//     name, and the `echo` Service by name through its ClusterIP; the echo
//     server reports the client address it saw, which must be the pod's own
//     (pod → ClusterIP is never masqueraded, on any node);
// (b) from the router namespace (outside the cluster) to every node's
//     underlay address: the echo NodePorts with externalTrafficPolicy Cluster
//     (every node answers) and Local (only nodes with an echo pod answer, and
//     the server sees the router's own address).
// Probes from pods go through `kubectl exec` with the built kubectl, so the
// apiserver → kubelet → container path is part of what is shown.

export interface Cell {
  text: string;
  pass: boolean;
}

export interface ServiceTable {
  title: string;
  corner: string;
  columns: string[];
  rows: { name: string; cells: Cell[] }[];
}

export interface Echo {
  server: string;
  client: string;
}

/**
 * The echo page's one line: the pod that answered and the client address it saw. busybox httpd listens on an
 * IPv6 socket, so an IPv4 peer reads "[::ffff:10.244.0.2]".
 */
export function parseEcho(out: string): Echo | undefined {
  const m = /^(\S+) \[?(?:::ffff:)?(\d+\.\d+\.\d+\.\d+)\]?\s*$/.exec(out.trim());
  return m ? { server: m[1]!, client: m[2]! } : undefined;
}

/** The IPv4 answer for `name` in busybox nslookup's output. */
export function parseNslookup(out: string, name: string): string | undefined {
  const i = out.indexOf(`Name:\t${name}`);
  if (i < 0) return undefined;
  return /Address:\s*(\d+\.\d+\.\d+\.\d+)/.exec(out.slice(i))?.[1];
}

export const serviceName = (name: string, namespace: string) => `${name}.${namespace}.svc.${CLUSTER_DOMAIN}`;
export const echoUrl = (host: string, port = ECHO_PORT) => `http://${host}:${port}${ECHO_PATH}`;

/** The built kubectl with a kubeconfig (the lab's admin one points at this process's relay). */
export function kubectl(bin: string, kubeconfig: string, args: string[]): Promise<ExecResult> {
  return exec([join(bin, "kubectl"), `--kubeconfig=${kubeconfig}`, ...args], { allowFailure: true });
}

/** Runs argv in the pod's first container (busybox), as `kubectl exec` does for a user. */
export function inPod(bin: string, kubeconfig: string, pod: LabPod, argv: string[]): Promise<ExecResult> {
  return kubectl(bin, kubeconfig, ["exec", "-n", pod.namespace, pod.name, "--", ...argv]);
}

/** An HTTP GET of the echo page from inside a pod, by whatever name or address; `timeout` bounds it. */
export async function echoFromPod(bin: string, kubeconfig: string, pod: LabPod, url: string): Promise<Echo | undefined> {
  return parseEcho((await inPod(bin, kubeconfig, pod, ["timeout", "5", "wget", "-qO-", url])).stdout);
}

export async function resolveInPod(bin: string, kubeconfig: string, pod: LabPod, name: string): Promise<string | undefined> {
  return parseNslookup((await inPod(bin, kubeconfig, pod, ["timeout", "5", "nslookup", name])).stdout, name);
}

/** The echo page fetched from the router namespace (outside the cluster). */
export async function echoFromOutside(lab: string, url: string): Promise<Echo | undefined> {
  return parseEcho((await execIn(routerNs(lab), ["curl", "-s", "-m", "3", url], { allowFailure: true })).stdout);
}

/** Nodes where a Ready echo pod runs (Local's endpoints). */
export async function echoNodes(kc: KubeConfig): Promise<Set<string>> {
  const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ECHO_NAMESPACE, labelSelector: Object.entries(ECHO_LABELS).map(([k, v]) => `${k}=${v}`).join(",") });
  const ready = pods.items.filter((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
  return new Set(ready.map((p) => p.spec?.nodeName ?? ""));
}

export async function probeClusterIps(bin: string, kubeconfig: string, pods: LabPod[]): Promise<ServiceTable> {
  const kubernetes = serviceName("kubernetes", "default");
  const echo = serviceName("echo", ECHO_NAMESPACE);
  const rows = await Promise.all(
    pods.map(async (p) => {
      const [addr, reply] = await Promise.all([resolveInPod(bin, kubeconfig, p, kubernetes), echoFromPod(bin, kubeconfig, p, echoUrl(echo))]);
      const dns: Cell = addr === KUBERNETES_SERVICE_IP ? { text: `ok ${addr}`, pass: true } : { text: addr ? `FAIL ${addr}` : "FAIL", pass: false };
      let http: Cell = { text: "FAIL", pass: false };
      if (reply) http = reply.client === p.ip ? { text: `ok ${reply.server} saw ${reply.client}`, pass: true } : { text: `FAIL ${reply.server} saw ${reply.client}`, pass: false };
      return { name: p.name, cells: [dns, http] };
    }),
  );
  return {
    title: `pod → Service by DNS name (inside each pod: kubectl exec, the pod's resolver; "saw" = the client address the echo pod saw, must be the pod's own)`,
    corner: "from \\ to",
    columns: [`${kubernetes} (nslookup)`, `${echo}:${ECHO_PORT} (wget)`],
    rows,
  };
}

export async function probeNodePorts(lab: string, kc: KubeConfig, nodes: LabNode[]): Promise<ServiceTable> {
  const withEcho = await echoNodes(kc);
  const rows = await Promise.all(
    nodes.map(async (n) => {
      const [cluster, local] = await Promise.all([echoFromOutside(lab, echoUrl(n.ip, ECHO_NODEPORT_CLUSTER)), echoFromOutside(lab, echoUrl(n.ip, ECHO_NODEPORT_LOCAL))]);
      const c: Cell = cluster ? { text: `ok ${cluster.server} saw ${cluster.client}`, pass: true } : { text: "FAIL", pass: false };
      let l: Cell;
      if (!withEcho.has(n.name)) l = local ? { text: `FAIL answered (no echo pod here)`, pass: false } : { text: "· none (no echo pod here)", pass: true };
      else if (!local) l = { text: "FAIL", pass: false };
      else l = local.client === ROUTER_IP ? { text: `ok ${local.server} saw ${local.client}`, pass: true } : { text: `FAIL ${local.server} saw ${local.client}`, pass: false };
      return { name: `${n.name} ${n.ip}`, cells: [c, l] };
    }),
  );
  return {
    title: `outside (${routerNs(lab)}, ${ROUTER_IP}) → NodePort on every node ("saw" = the client address the echo pod saw; Local must keep ${ROUTER_IP})`,
    corner: "node",
    columns: [`echo-nodeport :${ECHO_NODEPORT_CLUSTER} (Cluster)`, `echo-local :${ECHO_NODEPORT_LOCAL} (Local)`],
    rows,
  };
}

/** The echo page fetched from a node's own network namespace (a host process, not a pod). */
export async function echoFromNode(node: LabNode, url: string): Promise<Echo | undefined> {
  return parseEcho((await execIn(node.ns, ["curl", "-s", "-m", "3", url], { allowFailure: true })).stdout);
}

/**
 * (c) from every node itself: the echo ClusterIP and the node's own NodePorts, Cluster and Local (a node's own
 * traffic is never "external": Local answers on every node, as kube-proxy does it).
 */
export async function probeFromNodes(kc: KubeConfig, nodes: LabNode[]): Promise<ServiceTable> {
  const svc = await kc.makeApiClient(CoreV1Api).readNamespacedService({ name: "echo", namespace: ECHO_NAMESPACE });
  const vip = svc.spec?.clusterIP ?? "";
  const cell = (e: Echo | undefined): Cell => (e ? { text: `ok ${e.server} saw ${e.client}`, pass: true } : { text: "FAIL", pass: false });
  const rows = await Promise.all(
    nodes.map(async (n) => {
      const replies = await Promise.all([echoFromNode(n, echoUrl(vip)), echoFromNode(n, echoUrl(n.ip, ECHO_NODEPORT_CLUSTER)), echoFromNode(n, echoUrl(n.ip, ECHO_NODEPORT_LOCAL))]);
      return { name: `${n.name} ${n.ip}`, cells: replies.map(cell) };
    }),
  );
  return {
    title: "node → Service (from each node's own namespace: the echo ClusterIP, and the node's own NodePorts)",
    corner: "from node",
    columns: [`echo ${vip}:${ECHO_PORT}`, `own address :${ECHO_NODEPORT_CLUSTER} (Cluster)`, `own address :${ECHO_NODEPORT_LOCAL} (Local)`],
    rows,
  };
}

export function renderServiceTable(t: ServiceTable): string {
  return renderTable(t.corner, t.columns, t.rows.map((r) => ({ name: r.name, cells: r.cells.map((c) => c.text) })));
}

export function serviceTablePasses(t: ServiceTable): boolean {
  return t.rows.every((r) => r.cells.every((c) => c.pass));
}

/** `kubectl get` as a user runs it, and what in it is not Ready: Nodes not Ready, pods not Running with every container ready. */
export async function clusterStatus(bin: string, kubeconfig: string): Promise<{ text: string; notReady: string[] }> {
  const [nodes, pods, nodesJson, podsJson] = await Promise.all([
    kubectl(bin, kubeconfig, ["get", "nodes", "-o", "wide"]),
    kubectl(bin, kubeconfig, ["get", "pods", "-A", "-o", "wide"]),
    kubectl(bin, kubeconfig, ["get", "nodes", "-o", "json"]),
    kubectl(bin, kubeconfig, ["get", "pods", "-A", "-o", "json"]),
  ]);
  type Item = { metadata: { name: string; namespace?: string }; status?: { phase?: string; conditions?: { type: string; status: string }[]; containerStatuses?: { ready: boolean }[] } };
  const items = (r: ExecResult): Item[] => {
    try {
      return (JSON.parse(r.stdout) as { items: Item[] }).items;
    } catch {
      return [];
    }
  };
  const notReady: string[] = [];
  if (nodesJson.code !== 0 || podsJson.code !== 0) notReady.push(`kubectl failed: ${nodesJson.stderr}${podsJson.stderr}`.trim());
  for (const n of items(nodesJson)) if (!n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) notReady.push(`node ${n.metadata.name}`);
  for (const p of items(podsJson)) {
    const running = p.status?.phase === "Running" && (p.status.containerStatuses ?? []).length > 0 && p.status.containerStatuses!.every((c) => c.ready);
    if (!running) notReady.push(`pod ${p.metadata.namespace}/${p.metadata.name} (${p.status?.phase ?? "?"})`);
  }
  return { text: `${nodes.stdout.trimEnd()}\n\n${pods.stdout.trimEnd()}`, notReady };
}
