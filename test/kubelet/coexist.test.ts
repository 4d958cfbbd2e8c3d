import { CoreV1Api, NetworkingV1Api, type V1NetworkPolicy, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../support/until.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import type { LabPod } from "../../lab/cluster.ts";
import { commandLine, pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { ECHO_NODEPORT_LOCAL, ECHO_TARGET_PORT, echoContainer } from "../../lab/addons/echo.ts";
import { waitKubeProxyHealthy } from "../../lab/addons/kube-proxy.ts";
import { ECHO_PATH } from "../../lab/kubelet/images.ts";
import { waitPodReady } from "../../lab/kubelet/pods.ts";
import { startIn } from "../../lab/process.ts";
import { echoFromOutside, echoFromPod, echoNodes, echoUrl, serviceName } from "../../lab/services.ts";
import { ROUTER_IP } from "../../lab/names.ts";

// Twill next to kube-proxy, as in every Flannel or Calico cluster: each keeps
// to its own tables, NetworkPolicy on a Service's backends applies to what
// arrives through its ClusterIP and its NodePort, and fail-closed policy
// leaves kubelet's probes of new pods alone.

let lab: RunningLab;
beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", kubelet: true, daemonSet: true, addons: { proxyMode: "nftables" }, log: (m) => console.log(`[coexist lab] ${m}`) });
}, 900_000);
afterAll(async () => {
  await lab?.close();
});

type NftObject = Record<string, Record<string, unknown>>;

/**
 * A table as a sorted list of its objects (chains, rules, sets, maps with their elements), without handles
 * or counters: two listings are equal exactly when the table holds the same things, in whatever order the
 * kernel happens to print set elements.
 */
async function tableContent(ns: string, family: string, table: string): Promise<string[]> {
  const r = await execIn(ns, ["nft", "-j", "-s", "list", "table", family, table], { allowFailure: true });
  if (r.code !== 0) return [];
  const objects = (JSON.parse(r.stdout) as { nftables: NftObject[] }).nftables.filter((o) => !("metainfo" in o));
  return objects
    .map((o) => {
      const [kind, body] = Object.entries(o)[0]!;
      const { handle: _h, ...rest } = body as Record<string, unknown>;
      if (Array.isArray(rest.elem)) rest.elem = (rest.elem as unknown[]).map((e) => JSON.stringify(e)).sort();
      return `${kind} ${JSON.stringify(rest)}`;
    })
    .sort();
}

const TWILL_TABLES: [string, string][] = [["ip", "twill-nat"], ["inet", "twill-policy"]];
const KUBE_PROXY_TABLE: [string, string] = ["ip", "kube-proxy"];

async function snapshot(ns: string, tables: [string, string][]): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [family, name] of tables) out[`${family} ${name}`] = await tableContent(ns, family, name);
  return out;
}

const core = () => lab.kc.makeApiClient(CoreV1Api);
const netpol = () => lab.kc.makeApiClient(NetworkingV1Api);

/** A busybox httpd pod serving the echo page, with kubelet probes of both kinds. */
function probedPod(name: string, namespace: string): V1Pod {
  return {
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          ...echoContainer(),
          readinessProbe: { httpGet: { path: ECHO_PATH, port: ECHO_TARGET_PORT }, periodSeconds: 1 },
          livenessProbe: { tcpSocket: { port: ECHO_TARGET_PORT }, periodSeconds: 1, failureThreshold: 2 },
        },
      ],
    },
  };
}

async function withNamespace(name: string, body: () => Promise<void>): Promise<void> {
  await core().createNamespace({ body: { metadata: { name } } });
  try {
    await body();
  } finally {
    await core().deleteNamespace({ name });
  }
}

describe("Twill beside the real kube-proxy (nftables mode)", () => {
  it("keeps to its own tables through churn: each owner, re-deriving its tables from scratch, finds them as it left them", async () => {
    const node = lab.state.nodes[0]!;
    // Churn that makes both owners write: Services and their endpoints, policies, pods.
    await withNamespace("churn", async () => {
      for (let i = 0; i < 3; i++) {
        await core().createNamespacedService({ namespace: "churn", body: { metadata: { name: `svc${i}` }, spec: { selector: { app: "echo" }, ports: [{ port: 8000 + i, targetPort: ECHO_TARGET_PORT }] } } });
        await netpol().createNamespacedNetworkPolicy({ namespace: "churn", body: { metadata: { name: `np${i}` }, spec: { podSelector: { matchLabels: { app: `p${i}` } }, policyTypes: ["Ingress"], ingress: [{ _from: [{ podSelector: {} }] }] } } });
      }
      await core().createNamespacedPod({ namespace: "churn", body: { ...probedPod("p0", "churn"), spec: { ...probedPod("p0", "churn").spec!, nodeName: node.name } } });
      await waitPodReady(lab.kc, "churn", "p0");
      await core().deleteNamespacedService({ name: "svc1", namespace: "churn" });
      await netpol().deleteNamespacedNetworkPolicy({ name: "np1", namespace: "churn" });
      await core().deleteNamespacedPod({ name: "p0", namespace: "churn" });
    });
    // Let both settle: the namespace gone with everything in it (its deletion is asynchronous), then the
    // tables free of it and unchanged over a few seconds (each owner syncs in its own time).
    await until("namespace churn to be gone", async () => {
      try {
        await core().readNamespace({ name: "churn" });
        return false;
      } catch (err) {
        return (err as { code?: number }).code === 404;
      }
    }, 120_000);
    let before = await snapshot(node.ns, [...TWILL_TABLES, KUBE_PROXY_TABLE]);
    await until("the tables to settle", async () => {
      await new Promise((r) => setTimeout(r, 2_000));
      const now = await snapshot(node.ns, [...TWILL_TABLES, KUBE_PROXY_TABLE]);
      const settled = JSON.stringify(now) === JSON.stringify(before) && !JSON.stringify(now).includes("churn/");
      before = now;
      return settled;
    }, 120_000);
    for (const t of Object.values(before)) expect(t.length).toBeGreaterThan(0);

    // kube-proxy restarted: its first sync rewrites its whole table from the apiserver. Anything Twill had put
    // there would be gone; anything it had taken out would be back.
    const [pid] = await pidsIn(node.ns, "kube-proxy");
    expect(pid).toBeDefined();
    const argv = commandLine(pid!);
    process.kill(pid!, "SIGKILL");
    await until("kube-proxy to exit", async () => (await pidsIn(node.ns, "kube-proxy")).length === 0);
    const restarted = startIn(node.ns, `kube-proxy on ${node.name} (restarted)`, [`--mount=${node.kubelet!.mountNs}`, ...argv], node.kubelet!.kubeProxyLog!);
    await waitKubeProxyHealthy(node.ns, { name: node.name, ip: node.ip, dir: node.dir }, restarted);
    // Its first full sync writes what a fresh kube-proxy derives: wait for that listing to match, then compare
    // (a mismatch that never resolves shows its diff).
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    await until("the restarted kube-proxy's table to match", async () => same(await tableContent(node.ns, ...KUBE_PROXY_TABLE), before["ip kube-proxy"]), 30_000).catch(() => {});
    expect(await tableContent(node.ns, ...KUBE_PROXY_TABLE)).toEqual(before["ip kube-proxy"]);

    // Twill's daemon pod on that node replaced: the new daemon programs its tables from the apiserver.
    const daemons = await core().listNamespacedPod({ namespace: "twill-system", fieldSelector: `spec.nodeName=${node.name}` });
    const old = daemons.items[0]!.metadata!.name!;
    await core().deleteNamespacedPod({ name: old, namespace: "twill-system", body: { gracePeriodSeconds: 0 } });
    await until("a new Ready twill pod on the node", async () => {
      const pods = (await core().listNamespacedPod({ namespace: "twill-system", fieldSelector: `spec.nodeName=${node.name}` })).items;
      return pods.some((p) => p.metadata?.name !== old && p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
    }, 120_000);
    const twillBefore = { "ip twill-nat": before["ip twill-nat"], "inet twill-policy": before["inet twill-policy"] };
    await until("the new daemon's tables to match", async () => same(await snapshot(node.ns, TWILL_TABLES), twillBefore), 30_000).catch(() => {});
    expect(await snapshot(node.ns, TWILL_TABLES)).toEqual(twillBefore);
    // And kube-proxy's table survived Twill's start-up untouched.
    expect(await tableContent(node.ns, ...KUBE_PROXY_TABLE)).toEqual(before["ip kube-proxy"]);
  }, 600_000);

  it("applies NetworkPolicy on a Service's backends to traffic through its ClusterIP and its NodePort", async () => {
    const s = lab.state;
    const echoNode = [...(await echoNodes(lab.kc))][0]!;
    const nodeIp = s.nodes.find((n) => n.name === echoNode)!.ip;
    const [allowed, denied] = s.pods as [LabPod, LabPod];
    const policy = (outside: boolean): V1NetworkPolicy => ({
      metadata: { name: "echo-ingress", namespace: "default" },
      spec: {
        podSelector: { matchLabels: { app: "echo" } },
        policyTypes: ["Ingress"],
        ingress: [{ _from: [{ podSelector: { matchLabels: { access: "yes" } } }, ...(outside ? [{ ipBlock: { cidr: `${ROUTER_IP}/32` } }] : [])] }],
      },
    });
    await core().patchNamespacedPod({ name: allowed.name, namespace: allowed.namespace, body: [{ op: "add", path: "/metadata/labels/access", value: "yes" }] });
    await netpol().createNamespacedNetworkPolicy({ namespace: "default", body: policy(true) });
    try {
      const echo = echoUrl(serviceName("echo", "default"));
      await until("the labelled pod to reach echo through its ClusterIP", async () => (await echoFromPod(s.bin!, lab.kubeconfig!, allowed, echo))?.client === allowed.ip);
      await until("the unlabelled pod to be refused", async () => (await echoFromPod(s.bin!, lab.kubeconfig!, denied, echo)) === undefined);
      // externalTrafficPolicy Local keeps the client's address, so the ipBlock decides.
      const local = echoUrl(nodeIp, ECHO_NODEPORT_LOCAL);
      expect((await echoFromOutside(s.name, local))?.client).toBe(ROUTER_IP);
      await netpol().replaceNamespacedNetworkPolicy({ name: "echo-ingress", namespace: "default", body: policy(false) });
      await until("outside to be refused at the NodePort once the ipBlock goes", async () => (await echoFromOutside(s.name, local)) === undefined);
      expect((await echoFromPod(s.bin!, lab.kubeconfig!, allowed, echo))?.client).toBe(allowed.ip);
      // Isolated, the echo pods stay Ready: kubelet's probes come from the node and are never policy's business.
      expect((await echoNodes(lab.kc)).size).toBe(1);
    } finally {
      await netpol().deleteNamespacedNetworkPolicy({ name: "echo-ingress", namespace: "default" });
      await core().patchNamespacedPod({ name: allowed.name, namespace: allowed.namespace, body: [{ op: "remove", path: "/metadata/labels/access" }] });
    }
  });

  it("lets kubelet probe new pods that a deny-all policy isolates (fail-closed)", async () => {
    await withNamespace("isolated", async () => {
      await netpol().createNamespacedNetworkPolicy({ namespace: "isolated", body: { metadata: { name: "deny-all" }, spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] } } });
      const names = ["probed-1", "probed-2", "probed-3"];
      for (const n of names) await core().createNamespacedPod({ namespace: "isolated", body: probedPod(n, "isolated") });
      for (const n of names) await waitPodReady(lab.kc, "isolated", n);
      // Several liveness periods later: never restarted, still Ready.
      await new Promise((r) => setTimeout(r, 5_000));
      for (const n of names) {
        const p = await core().readNamespacedPod({ name: n, namespace: "isolated" });
        expect(p.status?.containerStatuses?.[0]?.restartCount, n).toBe(0);
        expect(p.status?.conditions?.find((c) => c.type === "Ready")?.status, n).toBe("True");
      }
      // The policy itself holds: a lab pod cannot reach them.
      const target = await core().readNamespacedPod({ name: names[0]!, namespace: "isolated" });
      const reply = await echoFromPod(lab.state.bin!, lab.kubeconfig!, lab.state.pods[0]!, `http://${target.status!.podIP}:${ECHO_TARGET_PORT}${ECHO_PATH}`);
      expect(reply).toBeUndefined();
    });
  }, 300_000);
});
