import { AppsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, PatchStrategy, setHeaderOptions, type V1Service } from "@kubernetes/client-node";
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import type { LabNode, LabPod } from "../../lab/cluster.ts";
import { startLab, type RunningLab } from "../../lab/lab.ts";
import { ECHO_NODEPORT_CLUSTER, ECHO_NODEPORT_LOCAL, ECHO_TARGET_PORT, echoContainer } from "../../lab/addons/echo.ts";
import { programsEndpoint, proxyRules } from "../../lab/addons/kube-proxy.ts";
import { ECHO_PATH } from "../../lab/kubelet/images.ts";
import { createKubeletPod, deleteKubeletPod } from "../../lab/kubelet/pods.ts";
import { echoNodes, echoUrl, parseEcho, type Echo } from "../../lab/services.ts";
import { netnsPath } from "../../lib/kernel/netns.ts";
import { ROUTER_IP, routerNs } from "../../lab/names.ts";
import { until } from "../support/until.ts";

// Twill's service proxy in a real cluster with no kube-proxy: kubelets,
// kube-controller-manager writing the EndpointSlices, Twill's daemon as a
// process on each node (as the lab's --kubelet mode runs it) with
// serviceProxy: true. Every check is a real connection: from pods, from the
// nodes themselves, and from the router namespace outside the cluster.

const NS = "proxy-test";
let lab: RunningLab;
let nodes: LabNode[];
let clients: LabPod[];
/** web-1 and web-3 on node1, web-2 on node2: echo servers behind this file's Services. */
const web: LabPod[] = [];
const helpers: ChildProcess[] = [];

const core = () => lab.kc.makeApiClient(CoreV1Api);

beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", kubelet: true, addons: { proxyMode: "twill" }, log: (m) => console.log(`[proxy lab] ${m}`) });
  nodes = lab.state.nodes;
  clients = lab.state.pods;
  await core().createNamespace({ body: { metadata: { name: NS } } });
  const cd = (n: LabNode) => n.kubelet!.containerd;
  for (const [name, node] of [["web-1", nodes[0]!], ["web-2", nodes[1]!], ["web-3", nodes[0]!]] as const) {
    web.push(await createKubeletPod(lab.kc, lab.state.name, node, cd(node), name, { namespace: NS, labels: { role: "web" }, containers: [echoContainer()] }));
  }
}, 900_000);

afterAll(async () => {
  for (const h of helpers) h.kill("SIGKILL");
  await lab?.close();
});

interface Reply {
  echo?: Echo;
  /** curl's exit code: 0 answered, 7 refused (rejected), 28 timed out. */
  code: number;
}

async function get(ns: string, url: string, timeoutSeconds = 3): Promise<Reply> {
  const r = await execIn(ns, ["curl", "-s", "-m", String(timeoutSeconds), url], { allowFailure: true });
  const echo = parseEcho(r.stdout);
  return { code: r.code, ...(echo ? { echo } : {}) };
}

async function createService(name: string, spec: V1Service["spec"], namespace = NS): Promise<V1Service> {
  return core().createNamespacedService({ namespace, body: { metadata: { name, namespace }, spec } });
}

const webPort = { name: "http", protocol: "TCP", port: 80, targetPort: "http" as unknown as number };

/** Both nodes' tables hold this text (an element, a rule). */
async function programmed(text: string, timeoutMs = 30_000): Promise<void> {
  for (const n of nodes) await until(`${n.name}'s twill-proxy table holds "${text.trim()}"`, async () => (await proxyRules(n.ns, "twill")).includes(text), timeoutMs);
}

/** Both nodes' tables DNAT to this endpoint (`present`), or neither does. */
async function endpointProgrammed(ip: string, port: number, present = true, timeoutMs = 30_000): Promise<void> {
  for (const n of nodes) await until(`${n.name}'s twill-proxy table ${present ? "DNATs" : "no longer DNATs"} to ${ip}:${port}`, async () => programsEndpoint(await proxyRules(n.ns, "twill"), "twill", ip, port) === present, timeoutMs);
}

/** Servers that answered `count` requests to `url` from `ns`, one at a time. */
async function servers(ns: string, url: string, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await get(ns, url);
    out.push(r.echo?.server ?? `failed (curl ${r.code})`);
  }
  return out;
}

describe("ClusterIP and NodePort", () => {
  it("serves the echo ClusterIP to pods on every node (their own address kept) and to the nodes themselves", async () => {
    const svc = await core().readNamespacedService({ name: "echo", namespace: "default" });
    const url = echoUrl(svc.spec!.clusterIP!);
    for (const p of clients) expect((await get(p.ns, url)).echo?.client, `from ${p.name}`).toBe(p.ip);
    for (const n of nodes) expect((await get(n.ns, url)).echo, `from ${n.name}`).toBeDefined();
  });

  it("answers NodePorts on every node's address from outside; Local only where an endpoint runs, keeping the client's address", async () => {
    const withEcho = await echoNodes(lab.kc);
    for (const n of nodes) {
      expect((await get(routerNs(lab.state.name), echoUrl(n.ip, ECHO_NODEPORT_CLUSTER))).echo, `Cluster on ${n.name}`).toBeDefined();
      const local = await get(routerNs(lab.state.name), echoUrl(n.ip, ECHO_NODEPORT_LOCAL), 2);
      if (withEcho.has(n.name)) expect(local.echo?.client, `Local on ${n.name}`).toBe(ROUTER_IP);
      else expect(local.code, `Local on ${n.name} (no endpoint: dropped)`).toBe(28);
    }
    // A pod reaches a Local NodePort on its own node's address, endpoint there or not, as it reaches the
    // ClusterIP (kube-proxy's short-circuit); so does the node itself.
    for (const n of nodes) {
      const pod = clients.find((c) => c.node === n.name)!;
      expect((await get(pod.ns, echoUrl(n.ip, ECHO_NODEPORT_LOCAL))).echo?.client, `${pod.name} → Local on ${n.name}`).toBe(pod.ip);
      expect((await get(n.ns, echoUrl(n.ip, ECHO_NODEPORT_LOCAL))).echo, `${n.name} → its own Local NodePort`).toBeDefined();
      expect((await get(n.ns, echoUrl(n.ip, ECHO_NODEPORT_CLUSTER))).echo, `${n.name} → its own Cluster NodePort`).toBeDefined();
    }
  });

  it("serves healthCheckNodePort: 200 with the local endpoint count where one runs, 503 elsewhere", async () => {
    // Beside the echo pods it selects (a selector matches in its own namespace).
    const svc = await createService("lb-local", { type: "LoadBalancer", externalTrafficPolicy: "Local", selector: { app: "echo" }, ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: ECHO_TARGET_PORT }] }, "default");
    const hc = svc.spec!.healthCheckNodePort!;
    const withEcho = await echoNodes(lab.kc);
    for (const n of nodes) {
      const want = withEcho.has(n.name) ? "200" : "503";
      let last = "";
      await until(`${n.name}:${hc} answers ${want}`, async () => {
        const r = await execIn(routerNs(lab.state.name), ["curl", "-s", "-m", "2", "-w", " %{http_code}", `http://${n.ip}:${hc}/`], { allowFailure: true });
        last = r.stdout;
        return r.stdout.endsWith(want);
      });
      expect(JSON.parse(last.slice(0, last.lastIndexOf(" ")))).toEqual({ service: { namespace: "default", name: "lb-local" }, localEndpoints: withEcho.has(n.name) ? 1 : 0, serviceProxyHealthy: true });
    }
  });

  it("rejects connections to a Service without endpoints (refused, not a timeout), by ClusterIP and NodePort", async () => {
    const svc = await createService("empty", { type: "NodePort", selector: { role: "nobody" }, ports: [webPort] });
    const ip = svc.spec!.clusterIP!;
    await programmed(`${ip} . tcp . 80 : `);
    expect((await get(clients[0]!.ns, `http://${ip}/`, 5)).code).toBe(7);
    expect((await get(nodes[1]!.ns, `http://${ip}/`, 5)).code).toBe(7);
    expect((await get(routerNs(lab.state.name), `http://${nodes[0]!.ip}:${svc.spec!.ports![0]!.nodePort}/`, 5)).code).toBe(7);
  });
});

describe("LoadBalancer", () => {
  it("gets an address from a Twill pool, answered on every node; another loadBalancerClass is left alone", async () => {
    const custom = lab.kc.makeApiClient(CustomObjectsApi);
    // TEST-NET-3: only ever routed inside the lab's router namespace.
    await custom.createClusterCustomObject({ group: "twill.dev", version: "v1alpha1", plural: "loadbalancerpools", body: { apiVersion: "twill.dev/v1alpha1", kind: "LoadBalancerPool", metadata: { name: "proxy-test" }, spec: { cidrs: ["203.0.113.0/30"] } } });
    const ports = [{ name: "http", protocol: "TCP", port: 80, targetPort: ECHO_TARGET_PORT }];
    await createService("lb", { type: "LoadBalancer", selector: { app: "echo" }, ports }, "default");
    await createService("lb-other", { type: "LoadBalancer", loadBalancerClass: "example.com/other", selector: { app: "echo" }, ports }, "default");
    let ip = "";
    await until("lb gets an ingress address", async () => {
      ip = (await core().readNamespacedService({ name: "lb", namespace: "default" })).status?.loadBalancer?.ingress?.[0]?.ip ?? "";
      return ip !== "";
    });
    // lb-local (above) is a LoadBalancer too, and older: it holds the pool's first address, lb the second.
    expect(ip).toBe("203.0.113.2");
    expect((await core().readNamespacedService({ name: "lb-local", namespace: "default" })).status?.loadBalancer?.ingress?.[0]?.ip).toBe("203.0.113.1");
    await programmed(`${ip} . tcp . 80 : goto ext-default/lb/tcp/http`);
    const rt = routerNs(lab.state.name);
    try {
      for (const n of nodes) {
        await execIn(rt, ["ip", "route", "replace", `${ip}/32`, "via", n.ip]);
        expect((await get(rt, echoUrl(ip))).echo, `${ip} through ${n.name}`).toBeDefined();
      }
    } finally {
      await execIn(rt, ["ip", "route", "del", `${ip}/32`], { allowFailure: true });
    }
    expect((await core().readNamespacedService({ name: "lb-other", namespace: "default" })).status?.loadBalancer?.ingress ?? []).toEqual([]);
  });
});

describe("endpoint choice", () => {
  it("keeps a client on one endpoint with sessionAffinity ClientIP; spreads without it", async () => {
    const sticky = await createService("sticky", { selector: { role: "web" }, sessionAffinity: "ClientIP", ports: [webPort] });
    const spread = await createService("spread", { selector: { role: "web" }, ports: [webPort] });
    for (const s of [sticky, spread]) await programmed(`${s.spec!.clusterIP} . tcp . 80 : goto svc-${NS}/${s.metadata!.name}/tcp/http`);
    for (const w of web) await endpointProgrammed(w.ip, ECHO_TARGET_PORT);
    const a = await servers(clients[0]!.ns, echoUrl(sticky.spec!.clusterIP!), 12);
    expect(new Set(a).size, a.join(", ")).toBe(1);
    expect(web.map((w) => w.name)).toContain(a[0]);
    const b = await servers(clients[0]!.ns, echoUrl(spread.spec!.clusterIP!), 24);
    expect(new Set(b).size, b.join(", ")).toBeGreaterThan(1);
  });

  it("internalTrafficPolicy Local: a pod reaches only its own node's endpoints", async () => {
    const svc = await createService("itp-local", { selector: { role: "web" }, internalTrafficPolicy: "Local", ports: [webPort] });
    await programmed(`${svc.spec!.clusterIP} . tcp . 80 : goto svc-${NS}/itp-local/tcp/http`);
    const url = echoUrl(svc.spec!.clusterIP!);
    const onNode1 = await servers(clients.find((c) => c.node === "node1")!.ns, url, 10);
    expect(new Set(onNode1), onNode1.join(", ")).toEqual(new Set(onNode1.filter((s) => s === "web-1" || s === "web-3")));
    expect(onNode1.length).toBe(10);
    const onNode2 = await servers(clients.find((c) => c.node === "node2")!.ns, url, 6);
    expect(onNode2).toEqual(Array(6).fill("web-2"));
  });

  it("programs SCTP ports (no SCTP sockets in this kernel: checked in the rules)", async () => {
    const svc = await createService("sctp", { selector: { role: "web" }, ports: [{ name: "s", protocol: "SCTP", port: 9999, targetPort: 9999 }] });
    await programmed(`${svc.spec!.clusterIP} . sctp . 9999 : goto svc-${NS}/sctp/sctp/s`);
    await programmed(`numgen random mod 3 0 meta l4proto sctp dnat ip to `);
    for (const w of web) await endpointProgrammed(w.ip, 9999);
  });
});

describe("changes under traffic", () => {
  /** Requests to `url` from `ns` one after another until `stop` resolves: answers and failures. */
  async function load(ns: string, url: string, stop: Promise<unknown>): Promise<{ ok: number; failed: string[]; servers: Set<string> }> {
    let done = false;
    void stop.finally(() => (done = true));
    const out = { ok: 0, failed: [] as string[], servers: new Set<string>() };
    while (!done) {
      const r = await get(ns, url, 3);
      if (r.echo) {
        out.ok++;
        out.servers.add(r.echo.server);
      } else out.failed.push(`curl ${r.code} at ${new Date().toISOString()}`);
    }
    return out;
  }

  it("loses no request while a Deployment scales 3 → 1 → 3 (terminating pods drain, new ones join)", async () => {
    const apps = lab.kc.makeApiClient(AppsV1Api);
    const labels = { role: "scaled" };
    // preStop keeps a terminating pod serving while the proxies take it out (it is no longer ready).
    const container = { ...echoContainer(), readinessProbe: { httpGet: { path: ECHO_PATH, port: ECHO_TARGET_PORT }, periodSeconds: 1 }, lifecycle: { preStop: { exec: { command: ["sleep", "4"] } } } };
    await apps.createNamespacedDeployment({ namespace: NS, body: { metadata: { name: "scaled", namespace: NS }, spec: { replicas: 3, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { automountServiceAccountToken: false, enableServiceLinks: false, terminationGracePeriodSeconds: 10, containers: [container] } } } } });
    const svc = await createService("scaled", { selector: labels, ports: [webPort] });
    const ready = async (n: number) => {
      const slices = await lab.kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: NS, labelSelector: "kubernetes.io/service-name=scaled" });
      return slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready).length === n;
    };
    await until("3 ready endpoints", () => ready(3), 120_000);
    await programmed(`${svc.spec!.clusterIP} . tcp . 80 : goto svc-${NS}/scaled/tcp/http`);
    const scale = async (replicas: number) => {
      await apps.patchNamespacedDeploymentScale({ name: "scaled", namespace: NS, body: { spec: { replicas } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
      await until(`${replicas} ready endpoints`, () => ready(replicas), 120_000);
    };
    const churn = (async () => {
      await new Promise((r) => setTimeout(r, 1000));
      await scale(1);
      await new Promise((r) => setTimeout(r, 6000)); // the terminating pods' preStop runs out
      await scale(3);
      await new Promise((r) => setTimeout(r, 3000));
    })();
    const [a, b] = await Promise.all([load(clients[0]!.ns, echoUrl(svc.spec!.clusterIP!), churn), load(clients[1]!.ns, echoUrl(svc.spec!.clusterIP!), churn), churn]);
    expect([...a.failed, ...b.failed]).toEqual([]);
    expect(a.ok + b.ok).toBeGreaterThan(10);
  }, 300_000);

  it("a Service deleted under load stops being proxied; the others lose nothing", async () => {
    const doomed = await createService("doomed", { selector: { role: "web" }, ports: [webPort] });
    const ip = doomed.spec!.clusterIP!;
    await programmed(`${ip} . tcp . 80 : goto svc-${NS}/doomed/tcp/http`);
    const echo = (await core().readNamespacedService({ name: "echo", namespace: "default" })).spec!.clusterIP!;
    let deleted = false;
    const churn = (async () => {
      await new Promise((r) => setTimeout(r, 1500));
      await core().deleteNamespacedService({ name: "doomed", namespace: NS });
      for (const n of nodes) await until(`${n.name} dropped doomed`, async () => !(await proxyRules(n.ns, "twill")).includes(`${NS}/doomed/`));
      deleted = true;
      await new Promise((r) => setTimeout(r, 1500));
    })();
    const [others, before] = await Promise.all([
      load(clients[1]!.ns, echoUrl(echo), churn),
      (async () => {
        let ok = 0;
        while (!deleted && ok < 1000) if ((await get(clients[0]!.ns, echoUrl(ip), 2)).echo) ok++;
        return ok;
      })(),
      churn,
    ]);
    expect(others.failed).toEqual([]);
    expect(before).toBeGreaterThan(0);
    expect((await get(clients[0]!.ns, echoUrl(ip), 2)).echo).toBeUndefined();
  }, 120_000);

  it("flushes a removed UDP endpoint's conntrack entry: the same client socket moves to the new endpoint", async () => {
    // A UDP server in web-1's and web-2's network namespaces answering with its pod's name.
    for (const w of web.slice(0, 2)) {
      const h = spawn("nsenter", [`--net=${netnsPath(w.ns)}`, "socat", "UDP4-RECVFROM:5353,fork", `SYSTEM:echo ${w.name}`], { stdio: "ignore" });
      helpers.push(h);
    }
    const svc = await createService("udp", { ports: [{ name: "dns", protocol: "UDP", port: 53, targetPort: 5353 }] });
    const discovery = lab.kc.makeApiClient(DiscoveryV1Api);
    const slice = (w: LabPod) => ({ metadata: { name: "udp-manual", namespace: NS, labels: { "kubernetes.io/service-name": "udp", "endpointslice.kubernetes.io/managed-by": "proxy-test" } }, addressType: "IPv4", ports: [{ name: "dns", protocol: "UDP", port: 5353 }], endpoints: [{ addresses: [w.ip], conditions: { ready: true } }] });
    await discovery.createNamespacedEndpointSlice({ namespace: NS, body: slice(web[0]!) });
    await endpointProgrammed(web[0]!.ip, 5353);
    // One client socket (fixed source port): one conntrack entry for every datagram it sends.
    const ask = async () => (await execIn(clients[0]!.ns, ["socat", "-T", "2", "-", `UDP4:${svc.spec!.clusterIP}:53,sourceport=40053`], { input: "hi\n", allowFailure: true })).stdout.trim();
    await until("web-1 answers through the ClusterIP", async () => (await ask()) === "web-1");
    await discovery.replaceNamespacedEndpointSlice({ name: "udp-manual", namespace: NS, body: slice(web[1]!) });
    await endpointProgrammed(web[1]!.ip, 5353);
    await endpointProgrammed(web[0]!.ip, 5353, false);
    // web-1 still answers on its own address: only a flushed entry lets the datagram reach web-2.
    expect(await ask()).toBe("web-2");
  });
});

describe("the table heals", () => {
  it("a flushed map and a flushed chain are put back (verified every third resync)", async () => {
    const n = nodes[0]!;
    const svc = await core().readNamespacedService({ name: "echo", namespace: "default" });
    const client = clients.find((c) => c.node === n.name)!;
    await execIn(n.ns, ["nft", "flush", "map", "inet", "twill-proxy", "cluster-ips"]);
    await execIn(n.ns, ["nft", "flush", "chain", "inet", "twill-proxy", "services"]);
    expect((await get(client.ns, echoUrl(svc.spec!.clusterIP!), 2)).echo).toBeUndefined();
    await until("echo answers again from node1", async () => !!(await get(client.ns, echoUrl(svc.spec!.clusterIP!), 2)).echo, 60_000);
  });

  it("a removed pod's address leaves every node's table", async () => {
    const gone = web[2]!;
    await deleteKubeletPod(lab.kc, gone);
    await endpointProgrammed(gone.ip, ECHO_TARGET_PORT, false);
    web.pop();
  });
});
