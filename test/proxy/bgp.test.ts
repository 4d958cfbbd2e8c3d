import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { execIn, netnsPath } from "../../lib/kernel/netns.ts";
import type { LabPod } from "../../lab/cluster.ts";
import { daemonConfig, startDaemon } from "../../lab/daemons.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { ECHO_TARGET_PORT, echoContainer } from "../../lab/addons/echo.ts";
import { createKubeletPod, deleteKubeletPod } from "../../lab/kubelet/pods.ts";
import { echoFromOutside, echoUrl } from "../../lab/services.ts";
import { ROUTER_IP, routerNs } from "../../lab/names.ts";
import { until } from "../support/until.ts";

// Service addresses over BGP: the lab's nodes run the bgp backend with the
// service proxy and bgp.advertiseServices; BIRD in the router namespace (the
// upstream router, eBGP AS 64513) peers with both through a BGPPeer and puts
// what it learns in the router's kernel. Traffic from the router then follows
// those routes: a LoadBalancer address with externalTrafficPolicy Local is
// announced only by the node with an endpoint, and the route moves with it.

let lab: RunningLab;
let bird: ChildProcess | undefined;
const ROUTER_AS = 64513;

beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "bgp", kubelet: true, addons: { proxyMode: "twill" }, log: (m) => console.log(`[bgp lab] ${m}`) });
  const s = lab.state;
  const custom = lab.kc.makeApiClient(CustomObjectsApi);
  await custom.createClusterCustomObject({ group: "twill.dev", version: "v1alpha1", plural: "bgppeers", body: { apiVersion: "twill.dev/v1alpha1", kind: "BGPPeer", metadata: { name: "router" }, spec: { peerIP: ROUTER_IP, asNumber: ROUTER_AS } } });
  // TEST-NET-3, routed only inside the lab's namespaces.
  await custom.createClusterCustomObject({ group: "twill.dev", version: "v1alpha1", plural: "loadbalancerpools", body: { apiVersion: "twill.dev/v1alpha1", kind: "LoadBalancerPool", metadata: { name: "bgp-test" }, spec: { cidrs: ["203.0.113.16/30"] } } });
  // bgp.advertiseServices on: the daemons restart with it.
  writeFileSync(s.daemonFiles!.config, `${daemonConfig({ backend: "bgp", serviceProxy: true })}bgp:\n  advertiseServices: true\n`);
  for (const n of s.nodes) {
    for (const pid of await pidsIn(n.ns, "daemon/main.ts")) process.kill(pid, "SIGTERM");
    await until(`the daemon on ${n.name} exits`, async () => (await pidsIn(n.ns, "daemon/main.ts")).length === 0);
    startDaemon(n, s.daemonFiles!);
  }
  const dir = join(s.dir, "bird");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "bird.conf"), `router id ${ROUTER_IP};
log "${join(dir, "bird.log")}" all;
protocol device {}
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
template bgp node { local as ${ROUTER_AS}; hold time 30; connect retry time 2; ipv4 { import all; export none; }; }
${s.nodes.map((n, i) => `protocol bgp node${i + 1} from node { neighbor ${n.ip} as 64512; }`).join("\n")}
`);
  bird = spawn("nsenter", [`--net=${netnsPath(routerNs(s.name))}`, "bird", "-f", "-c", join(dir, "bird.conf"), "-s", join(dir, "bird.ctl"), "-P", join(dir, "bird.pid")], { stdio: "ignore" });
}, 900_000);

afterAll(async () => {
  bird?.kill("SIGKILL");
  await lab?.close();
});

/** The router's kernel route for `ip` (installed by BIRD), as one line; "" when there is none. */
async function routerRoute(ip: string): Promise<string> {
  const r = await execIn(routerNs(lab.state.name), ["ip", "-o", "route", "show", `${ip}/32`, "proto", "bird"], { allowFailure: true });
  return r.stdout.replace(/\\\s*/g, " ").replace(/\s+/g, " ").trim();
}

const via = (route: string) => [...route.matchAll(/via (\S+)/g)].map((m) => m[1]!).sort();

/** Waits until the router routes `ip` via exactly `nodes`; the failure names the route it had. */
async function routedVia(ip: string, nodes: string[], timeoutMs = 60_000): Promise<void> {
  let last = "";
  try {
    await until(`${ip} routed via ${nodes.join(", ")}`, async () => JSON.stringify(via((last = await routerRoute(ip)))) === JSON.stringify([...nodes].sort()), timeoutMs);
  } catch (err) {
    const learned = await execIn(routerNs(lab.state.name), ["birdc", "-s", join(lab.state.dir, "bird", "bird.ctl"), "show", "route", "all", `${ip}/32`], { allowFailure: true });
    throw new Error(`${(err as Error).message}; the router had "${last}"; BIRD: ${learned.stdout.slice(0, 1500)}`);
  }
}

it("announces ClusterIPs from every node, and an ETP Local LoadBalancer address only where its endpoint is; the route follows the endpoint", async () => {
  const s = lab.state;
  const core = lab.kc.makeApiClient(CoreV1Api);
  const [node1, node2] = s.nodes as [typeof s.nodes[0], typeof s.nodes[0]];
  const kubernetes = (await core.readNamespacedService({ name: "kubernetes", namespace: "default" })).spec!.clusterIP!;
  await routedVia(kubernetes, [node1.ip, node2.ip], 90_000);

  const pod = (n: typeof node1, name: string): Promise<LabPod> => createKubeletPod(lab.kc, s.name, n, n.kubelet!.containerd, name, { labels: { role: "bgp-web" }, containers: [echoContainer()] });
  const first = await pod(node1, "bgp-web-1");
  await core.createNamespacedService({ namespace: "default", body: { metadata: { name: "bgp-lb" }, spec: { type: "LoadBalancer", externalTrafficPolicy: "Local", selector: { role: "bgp-web" }, ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: ECHO_TARGET_PORT }] } } });
  let lb = "";
  await until("bgp-lb gets an address from the pool", async () => (lb = (await core.readNamespacedService({ name: "bgp-lb", namespace: "default" })).status?.loadBalancer?.ingress?.[0]?.ip ?? "") !== "");
  expect(lb).toBe("203.0.113.17");
  await routedVia(lb, [node1.ip]);
  // The router reaches it over BGP's route, and the endpoint sees the router's own address.
  await until("the LoadBalancer address answers from outside", async () => (await echoFromOutside(s.name, echoUrl(lb)))?.client === ROUTER_IP, 30_000);

  // The endpoint moves to node2: the route follows.
  await pod(node2, "bgp-web-2");
  await deleteKubeletPod(lab.kc, first);
  await routedVia(lb, [node2.ip]);
  const reply = await echoFromOutside(s.name, echoUrl(lb));
  expect([reply?.server, reply?.client]).toEqual(["bgp-web-2", ROUTER_IP]);
}, 300_000);
