import { readFileSync } from "node:fs";
import { AppsV1Api, CoreV1Api, DiscoveryV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../support/until.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import type { LabPod } from "../../lab/cluster.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import type { ProxyMode } from "../../lab/addons/kube-proxy.ts";
import { ECHO_NODEPORT_CLUSTER, ECHO_NODEPORT_LOCAL } from "../../lab/addons/echo.ts";
import { COREDNS_IMAGE } from "../../lab/addons/coredns.ts";
import { clusterStatus, echoFromOutside, echoFromPod, echoNodes, echoUrl, resolveInPod, serviceName } from "../../lab/services.ts";
import { DNS_SERVICE_IP, KUBERNETES_SERVICE_IP, ROUTER_IP } from "../../lab/names.ts";

// The lab's default: a real cluster around Twill. kubelet + containerd per
// node, Twill as its DaemonSet, kube-proxy on every node, CoreDNS behind
// kube-dns, and the lab's echo Services. Each describe starts its own 2-node
// lab (one after the other), the second with kube-proxy's iptables mode.

async function startClusterLab(proxyMode: ProxyMode): Promise<RunningLab> {
  return startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", kubelet: true, daemonSet: true, addons: { proxyMode }, log: (m) => console.log(`[cluster lab ${proxyMode}] ${m}`) });
}

/** A table's ruleset without counters or handles, so two listings compare equal when the rules are. */
async function nftTable(ns: string, family: string, table: string): Promise<string> {
  const r = await execIn(ns, ["nft", "-s", "list", "table", family, table], { allowFailure: true });
  return r.code === 0 ? r.stdout : "";
}

async function clusterIp(lab: RunningLab, name: string, namespace = "default"): Promise<string> {
  return (await lab.kc.makeApiClient(CoreV1Api).readNamespacedService({ name, namespace })).spec!.clusterIP!;
}

/** A lab pod on a node where no echo pod runs, and the echo pod it will reach on another node. */
async function podAwayFromEcho(lab: RunningLab): Promise<{ client: LabPod; echoNode: string }> {
  const nodes = await echoNodes(lab.kc);
  const client = lab.state.pods.find((p) => !nodes.has(p.node));
  expect(client, "a lab pod on a node without an echo pod").toBeDefined();
  return { client: client!, echoNode: [...nodes][0]! };
}

describe("a real cluster with kube-proxy in nftables mode", () => {
  let lab: RunningLab;
  // Read before the lab starts: the machine-wide conntrack limit kube-proxy must leave alone.
  let conntrackMax = "";
  beforeAll(async () => {
    conntrackMax = readFileSync("/proc/sys/net/netfilter/nf_conntrack_max", "utf8");
    lab = await startClusterLab("nftables");
  }, 900_000);
  afterAll(async () => {
    await lab?.close();
  });

  it("shows every node Ready and every pod Running and ready in the built kubectl's `get`", async () => {
    const s = lab.state;
    const status = await clusterStatus(s.bin!, lab.kubeconfig!);
    expect(status.notReady).toEqual([]);
    for (const n of s.nodes) expect(status.text).toMatch(new RegExp(`^${n.name}\\s+Ready\\s`, "m"));
    // Twill's DaemonSet, CoreDNS, the echo pod and the lab's pods are all in the list, Running.
    for (const prefix of ["twill-system\\s+twill-", "kube-system\\s+coredns-", "default\\s+echo-", ...s.pods.map((p) => `default\\s+${p.name}`)]) {
      expect(status.text).toMatch(new RegExp(`^${prefix}\\S*\\s+1/1\\s+Running\\s`, "m"));
    }
  });

  it("runs kube-proxy on every node in nftables mode, with its own table beside Twill's untouched ones", async () => {
    expect(lab.state.addons?.proxyMode).toBe("nftables");
    const before = new Map<string, string>();
    for (const n of lab.state.nodes) {
      expect(await pidsIn(n.ns, "kube-proxy")).toHaveLength(1);
      expect(await nftTable(n.ns, "ip", "kube-proxy")).toContain(KUBERNETES_SERVICE_IP);
      const twill = (await nftTable(n.ns, "inet", "twill-policy")) + (await nftTable(n.ns, "ip", "twill-nat"));
      expect(twill).toContain("masquerade");
      before.set(n.name, twill);
    }
    // kube-proxy programs a new Service on every node; Twill's tables stay exactly as they were.
    const core = lab.kc.makeApiClient(CoreV1Api);
    await core.createNamespacedService({ namespace: "default", body: { metadata: { name: "proxy-sync" }, spec: { selector: { app: "echo" }, ports: [{ port: 8081, targetPort: 8080 }] } } });
    try {
      const ip = await clusterIp(lab, "proxy-sync");
      for (const n of lab.state.nodes) await until(`kube-proxy on ${n.name} programs ${ip}`, async () => (await nftTable(n.ns, "ip", "kube-proxy")).includes(ip));
      for (const n of lab.state.nodes) {
        expect((await nftTable(n.ns, "inet", "twill-policy")) + (await nftTable(n.ns, "ip", "twill-nat"))).toBe(before.get(n.name));
      }
    } finally {
      await core.deleteNamespacedService({ name: "proxy-sync", namespace: "default" });
    }
  });

  it("leaves machine-wide sysctls alone: kube-proxy's conntrack settings land in the node's namespace only", async () => {
    expect(readFileSync("/proc/sys/net/netfilter/nf_conntrack_max", "utf8")).toBe(conntrackMax);
    for (const n of lab.state.nodes) {
      const log = readFileSync(n.kubelet!.kubeProxyLog!, "utf8");
      expect(log).not.toContain("Setting nf_conntrack_max");
      expect(log).not.toContain("hashsize");
      const set = [...log.matchAll(/"Set sysctl" entry="([^"]+)" value=(\d+)/g)].map((m) => ({ entry: m[1]!, value: m[2]! }));
      for (const { entry, value } of set) {
        expect(entry).toMatch(/^net\/netfilter\/nf_conntrack_tcp_timeout_/);
        // The node's namespace has kube-proxy's value (a per-namespace sysctl).
        expect((await execIn(n.ns, ["cat", `/proc/sys/${entry}`])).stdout.trim()).toBe(value);
      }
    }
  });

  it("runs CoreDNS Available behind the kube-dns Service at the address kubelet gives pods", async () => {
    const d = await lab.kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: "coredns", namespace: "kube-system" });
    expect(d.status?.availableReplicas).toBe(2);
    expect(d.spec?.template.spec?.containers[0]?.image).toBe(COREDNS_IMAGE);
    expect(await clusterIp(lab, "kube-dns", "kube-system")).toBe(DNS_SERVICE_IP);
    const slices = await lab.kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: "kube-system", labelSelector: "kubernetes.io/service-name=kube-dns" });
    expect(slices.items.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready))).toHaveLength(2);
  });

  it("resolves Services by name inside a pod and answers through the echo Service's ClusterIP", async () => {
    const s = lab.state;
    const echoIp = await clusterIp(lab, "echo");
    for (const p of s.pods) {
      expect(await resolveInPod(s.bin!, lab.kubeconfig!, p, serviceName("kubernetes", "default"))).toBe(KUBERNETES_SERVICE_IP);
      expect(await resolveInPod(s.bin!, lab.kubeconfig!, p, serviceName("echo", "default"))).toBe(echoIp);
      const reply = await echoFromPod(s.bin!, lab.kubeconfig!, p, echoUrl(serviceName("echo", "default")));
      expect(reply?.server).toMatch(/^echo-/);
    }
  });

  it("lets an endpoint on the other node see the client pod's own address through a ClusterIP (no masquerade)", async () => {
    const s = lab.state;
    const { client, echoNode } = await podAwayFromEcho(lab);
    expect(client.node).not.toBe(echoNode);
    const reply = await echoFromPod(s.bin!, lab.kubeconfig!, client, echoUrl(await clusterIp(lab, "echo")));
    expect(reply?.client).toBe(client.ip);
  });

  it("answers NodePorts from outside the cluster: Cluster on every node, Local only where an echo pod runs, keeping the client's address", async () => {
    const withEcho = await echoNodes(lab.kc);
    expect(withEcho.size).toBe(1);
    for (const n of lab.state.nodes) {
      const cluster = await echoFromOutside(lab.state.name, echoUrl(n.ip, ECHO_NODEPORT_CLUSTER));
      expect(cluster?.server, `NodePort (Cluster) on ${n.name}`).toMatch(/^echo-/);
      const local = await echoFromOutside(lab.state.name, echoUrl(n.ip, ECHO_NODEPORT_LOCAL));
      if (withEcho.has(n.name)) expect(local?.client, `NodePort (Local) on ${n.name}`).toBe(ROUTER_IP);
      else expect(local, `NodePort (Local) on ${n.name}, which has no echo pod`).toBeUndefined();
    }
  });
});

describe("a real cluster with kube-proxy in iptables mode", () => {
  let lab: RunningLab;
  beforeAll(async () => {
    lab = await startClusterLab("iptables");
  }, 900_000);
  afterAll(async () => {
    await lab?.close();
  });

  it("programs Services as iptables-nft rules (table ip nat, chain KUBE-SERVICES), no kube-proxy nftables table", async () => {
    expect(lab.state.addons?.proxyMode).toBe("iptables");
    const echoIp = await clusterIp(lab, "echo");
    for (const n of lab.state.nodes) {
      await until(`KUBE-SERVICES on ${n.name} has ${echoIp}`, async () => (await execIn(n.ns, ["iptables-nft", "-t", "nat", "-S", "KUBE-SERVICES"], { allowFailure: true })).stdout.includes(`${echoIp}/32`));
      expect(await nftTable(n.ns, "ip", "kube-proxy")).toBe("");
      // The rules live in the node's own namespace: iptables-nft shows them as nft's `ip nat` table there.
      expect(await nftTable(n.ns, "ip", "nat")).toContain("KUBE-SERVICES");
    }
  });

  it("reaches a ClusterIP by name from a pod on the other node, which sees the client pod's address", async () => {
    const s = lab.state;
    const { client } = await podAwayFromEcho(lab);
    const reply = await echoFromPod(s.bin!, lab.kubeconfig!, client, echoUrl(serviceName("echo", "default")));
    expect(reply?.server).toMatch(/^echo-/);
    expect(reply?.client).toBe(client.ip);
    expect((await clusterStatus(s.bin!, lab.kubeconfig!)).notReady).toEqual([]);
  });
});
