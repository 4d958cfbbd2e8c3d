import { watch, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, NetworkingV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../support/until.ts";
import { addNetns, deleteNetns, execIn, netnsPath } from "../../lib/kernel/netns.ts";
import type { LabNode, LabPod } from "../../lab/cluster.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { allPairs, matrixPasses, probeMatrix } from "../../lab/matrix.ts";
import { probeTcpMatrix } from "../../lab/tcp-probe.ts";
import { startContainerd } from "../../lab/kubelet/containerd.ts";
import { cniGc, runningTaskIds, sandboxIds, strayAttachment } from "../../lab/kubelet/gc.ts";
import { POD_IMAGE } from "../../lab/kubelet/images.ts";
import { attachReadyPod, createKubeletPod, deleteKubeletPod, kubeletPodSpec } from "../../lab/kubelet/pods.ts";

// Real kubelets and containerd run the lab's nodes (their own lab, not the
// shared one): every pod here is an ordinary Pod object, started by kubelet
// through containerd's CRI, networked by Twill's CNI plugin as containerd
// executes it from the node's CNI directory.

let lab: RunningLab;
beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", kubelet: true, log: (m) => console.log(`[kubelet lab] ${m}`) });
}, 900_000);
afterAll(async () => {
  await lab?.close();
});

const node = (name: string): LabNode => lab.state.nodes.find((n) => n.name === name)!;

/** The IPAM store's records on a node: address → the container id it was claimed for. */
function ipamRecords(n: LabNode): Map<string, string> {
  const dir = join(n.ipamDir, "twill");
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) {
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(f)) continue;
    try {
      out.set(f, readFileSync(join(dir, f), "utf8").split("\n")[0]!);
    } catch {
      // released meanwhile
    }
  }
  return out;
}

/** Twill's host veths on a node and the container id in each one's alias. */
async function hostVeths(n: LabNode): Promise<{ name: string; containerId: string | undefined }[]> {
  const { stdout } = await execIn(n.ns, ["ip", "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string; ifalias?: string }[])
    .filter((l) => l.ifname.startsWith("twl"))
    .map((l) => ({ name: l.ifname, containerId: /^twill:[^/]+\/([^/]+)\//.exec(l.ifalias ?? "")?.[1] }));
}

/** A TCP exchange with busybox's `nc` serving inside a container: the line it sends, or "" when refused/dropped. */
async function tcpHello(from: LabPod, to: LabPod, port = 8080): Promise<string> {
  const r = await execIn(from.ns, ["socat", "-T2", "-", `TCP:${to.ip}:${port},connect-timeout=2`], { input: "", allowFailure: true });
  return r.stdout.trim();
}

async function pings(from: LabPod, to: LabPod): Promise<boolean> {
  return (await execIn(from.ns, ["ping", "-c1", "-W1", to.ip], { allowFailure: true })).code === 0;
}

// A server container: busybox nc answering "hello" on 8080 to every connection.
const SERVER = [{ name: "server", image: POD_IMAGE, imagePullPolicy: "Never", command: ["/bin/sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e /bin/echo hello & wait"] }];

describe("pods run by kubelet and containerd", () => {
  it("registers every Node through kubelet (Node authorizer) and runs a real containerd per node", async () => {
    const nodes = (await lab.kc.makeApiClient(CoreV1Api).listNode()).items;
    expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(["node1", "node2"]);
    for (const n of nodes) {
      expect(n.status?.nodeInfo?.kubeletVersion).toBe("v1.36.3");
      expect(n.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\/1\.6\./);
      expect(n.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    }
  });

  it("gives Pod objects Twill addresses from their node's CIDR, reported in status.podIPs", async () => {
    const core = lab.kc.makeApiClient(CoreV1Api);
    for (const p of lab.state.pods) {
      const n = node(p.node);
      const pod = await core.readNamespacedPod({ name: p.name, namespace: p.namespace });
      const ip = pod.status!.podIPs![0]!.ip;
      expect(pod.status?.podIP).toBe(ip);
      expect(ip.split(".").slice(0, 3).join(".")).toBe(n.podCIDR.split(".").slice(0, 3).join("."));
      // Twill's IPAM claimed it for a sandbox containerd knows, and the pod's own eth0 carries it as a /32.
      const sandbox = ipamRecords(n).get(ip);
      expect(await sandboxIds(n.kubelet!.containerd)).toContain(sandbox);
      const addrs = JSON.parse((await execIn(p.ns, ["ip", "-j", "addr", "show", "eth0"])).stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
      expect(addrs[0]!.addr_info).toContainEqual(expect.objectContaining({ local: ip, prefixlen: 32 }));
      expect((await hostVeths(n)).map((v) => v.containerId)).toContain(sandbox);
      // containerd executed the plugin from the node's CNI directory: its log names the sandbox.
      expect(readFileSync(n.kubelet!.cniLog, "utf8")).toContain(sandbox!);
    }
  });

  it("lets pods on different nodes reach each other (ping and TCP)", async () => {
    const pods = lab.state.pods;
    expect(new Set(pods.map((p) => p.node)).size).toBe(2);
    const ping = await probeMatrix(pods, allPairs);
    const tcp = await probeTcpMatrix(pods, allPairs);
    expect(ping.filter((p) => !p.ok).map((p) => `${p.from.name}→${p.to.name}`)).toEqual([]);
    expect(tcp.filter((p) => !p.ok).map((p) => `${p.from.name}→${p.to.name}`)).toEqual([]);
    expect(matrixPasses(ping) && matrixPasses(tcp)).toBe(true);
  });

  it("enforces a NetworkPolicy applied through the apiserver on those containers", async () => {
    const n1 = node("node1");
    const n2 = node("node2");
    const [server, client, other] = await Promise.all([
      createKubeletPod(lab.kc, lab.state.name, n1, n1.kubelet!.containerd, "np-server", { labels: { role: "server" }, containers: SERVER }),
      createKubeletPod(lab.kc, lab.state.name, n2, n2.kubelet!.containerd, "np-client", { labels: { role: "client" } }),
      createKubeletPod(lab.kc, lab.state.name, n2, n2.kubelet!.containerd, "np-other"),
    ]);
    const net = lab.kc.makeApiClient(NetworkingV1Api);
    try {
      // Before the policy both reach the server's container.
      await until("busybox nc answers in the server container", async () => (await tcpHello(client!, server!)) === "hello");
      expect(await tcpHello(other!, server!)).toBe("hello");
      expect(await pings(other!, server!)).toBe(true);
      await net.createNamespacedNetworkPolicy({
        namespace: "default",
        body: {
          metadata: { name: "server-from-clients" },
          spec: {
            podSelector: { matchLabels: { role: "server" } },
            policyTypes: ["Ingress"],
            ingress: [{ _from: [{ podSelector: { matchLabels: { role: "client" } } }], ports: [{ protocol: "TCP", port: 8080 }] }],
          },
        },
      });
      await until("the policy drops np-other's TCP", async () => (await tcpHello(other!, server!)) === "");
      expect(await tcpHello(client!, server!)).toBe("hello");
      expect(await pings(other!, server!)).toBe(false);
      expect(await pings(client!, server!)).toBe(false);
      await net.deleteNamespacedNetworkPolicy({ name: "server-from-clients", namespace: "default" });
      await until("np-other reaches the server again", async () => (await tcpHello(other!, server!)) === "hello");
    } finally {
      await net.deleteNamespacedNetworkPolicy({ name: "server-from-clients", namespace: "default" }).catch(() => {});
      await Promise.all([server, client, other].map((p) => deleteKubeletPod(lab.kc, p!)));
    }
  });

  it("releases a pod's address and veth when the pod is deleted (containerd's CNI DEL)", async () => {
    const n2 = node("node2");
    const pod = await createKubeletPod(lab.kc, lab.state.name, n2, n2.kubelet!.containerd, "del-me");
    const sandbox = ipamRecords(n2).get(pod.ip);
    expect(sandbox).toBeTruthy();
    expect((await hostVeths(n2)).map((v) => v.containerId)).toContain(sandbox);
    await deleteKubeletPod(lab.kc, pod);
    expect(ipamRecords(n2).has(pod.ip)).toBe(false);
    expect((await hostVeths(n2)).map((v) => v.containerId)).not.toContain(sandbox);
    // The sandbox is stopped (kubelet removes stopped sandboxes later, in its container GC).
    expect((await runningTaskIds(n2.kubelet!.containerd)).has(sandbox!)).toBe(false);
  });

  it("leaks nothing after Twill's GC when containerd is killed in the middle of creating a sandbox", async () => {
    const n1 = node("node1");
    const cd = n1.kubelet!.containerd;
    const [containerdPid] = await pidsIn(n1.ns, cd.config);
    expect(containerdPid).toBeGreaterThan(0);
    const before = new Set(ipamRecords(n1).keys());
    // The instant Twill's IPAM claims an address for the new pod, its ADD is
    // under way and RunPodSandbox has not returned: containerd dies there.
    let claimed = "";
    const watcher = watch(join(n1.ipamDir, "twill"), (_e, f) => {
      if (claimed || !f || !/^\d+\.\d+\.\d+\.\d+$/.test(f) || before.has(f)) return;
      claimed = f;
      process.kill(containerdPid!, "SIGKILL");
    });
    const core = lab.kc.makeApiClient(CoreV1Api);
    try {
      await core.createNamespacedPod({ namespace: "default", body: kubeletPodSpec("node1", "gc-victim") });
      await until("containerd killed mid-ADD", async () => claimed !== "" && !existsSync(`/proc/${containerdPid}`));
    } finally {
      watcher.close();
    }
    // containerd comes back; kubelet stops the half-made sandbox (containerd 1.6 recorded it before its
    // network: CNI DEL releases the claimed address) and runs a new one.
    await startContainerd(n1.ns, n1.kubelet!.mountNs, cd, n1.kubelet!.containerdLog, n1.name);
    const victim = await attachReadyPod(lab.kc, lab.state.name, n1, cd, "default", "gc-victim");
    expect(victim.ip).not.toBe(claimed);
    // And an attachment no runtime remembers (ADD for a container containerd never knew): only GC can find it.
    const strayNs = `${lab.state.name}-stray`;
    await addNetns(strayNs);
    const stray = await strayAttachment(n1, "stray-0123456789abcdef", netnsPath(strayNs));
    expect(ipamRecords(n1).get(stray)).toBe("stray-0123456789abcdef");

    await cniGc(n1);
    await deleteNetns(strayNs);
    const running = await runningTaskIds(cd);
    const records = ipamRecords(n1);
    // Every address and every Twill veth left belongs to a running sandbox; the killed attempt's and the stray one are gone.
    expect([...records].filter(([, id]) => !running.has(id))).toEqual([]);
    expect(records.has(claimed)).toBe(false);
    expect(records.has(stray)).toBe(false);
    expect(records.get(victim.ip)).toBeTruthy();
    expect((await hostVeths(n1)).filter((v) => !v.containerId || !running.has(v.containerId))).toEqual([]);
    // GC kept every live attachment: the pods that were running before still work, and the retried one does too.
    const other = lab.state.pods.find((p) => p.node === "node2")!;
    expect(await pings(other, victim)).toBe(true);
    for (const p of lab.state.pods) expect(await pings(p === other ? victim : other, p)).toBe(true);
    await deleteKubeletPod(lab.kc, victim);
  });
});
