import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { AppsV1Api, CoreV1Api, Watch, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { allPairs, probeMatrix } from "../../lab/matrix.ts";
import { probeTcpMatrix } from "../../lab/tcp-probe.ts";
import { ctr } from "../../lab/kubelet/containerd.ts";
import { deleteKubeletPod, kubeletPodSpec } from "../../lab/kubelet/pods.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { LAB_TWILL_IMAGE } from "../../lab/kubelet/twill-image.ts";

// Twill installed the way an operator installs it (docs/install.md): an
// overlay of manifests/ applied with `kubectl apply -k`, the DaemonSet's pods
// placed by kube-scheduler and run by each node's kubelet from the Twill image
// the lab built and imported under the overlay's image name (no registry). No lab-run
// daemon process exists; the init container's `twill install` put the plugin
// where containerd runs it from.

const REPO = resolve(import.meta.dirname, "../..");
let lab: RunningLab;
beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", kubelet: true, daemonSet: true, log: (m) => console.log(`[daemonset lab] ${m}`) });
}, 900_000);
afterAll(async () => {
  await lab?.close();
});

describe("Twill as the manifest's DaemonSet on real kubelets", () => {
  it("runs one Ready twill pod per node from the lab-built image, and no daemon of the lab's own", async () => {
    const ds = await lab.kc.makeApiClient(AppsV1Api).readNamespacedDaemonSet({ name: "twill", namespace: "twill-system" });
    expect(ds.status?.numberReady).toBe(2);
    // The overlay's image and apiserver address, not the manifest's.
    const twill = ds.spec?.template.spec?.containers.find((c) => c.name === "twill");
    expect(twill?.image).toBe(LAB_TWILL_IMAGE);
    expect(twill?.env?.map((e) => e.name)).toEqual(expect.arrayContaining(["NODE_NAME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"]));
    const pods = (await lab.kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "twill-system" })).items;
    expect(pods.map((p) => p.spec?.nodeName).sort()).toEqual(["node1", "node2"]);
    for (const p of pods) {
      expect(p.metadata?.ownerReferences?.[0]?.kind).toBe("DaemonSet");
      expect(p.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
      const status = p.status?.containerStatuses?.find((c) => c.name === "twill");
      expect(status?.image).toBe(LAB_TWILL_IMAGE);
      const node = lab.state.nodes.find((n) => n.name === p.spec?.nodeName)!;
      // The image kubelet ran is the one the lab imported into that node's containerd.
      const images = (await ctr(node.kubelet!.containerd, ["images", "ls"])).stdout;
      expect(images).toContain(LAB_TWILL_IMAGE);
      expect(images).toContain(status?.imageID?.replace(/^.*@/, "") ?? "none");
    }
    for (const n of lab.state.nodes) expect(await pidsIn(n.ns, join(REPO, "daemon/main.ts"))).toEqual([]);
  });

  it("installs the plugin and the ConfigMap's conflist where the node's containerd reads them (init container)", () => {
    for (const n of lab.state.nodes) {
      const cd = n.kubelet!.containerd;
      expect(readFileSync(join(cd.cniBin, "twill")).equals(readFileSync(join(REPO, "dist/cni/twill")))).toBe(true);
      const conflist = JSON.parse(readFileSync(join(cd.cniConf, "10-twill.conflist"), "utf8")) as { name: string; plugins: { type: string; nodeFile?: string }[] };
      expect(conflist.name).toBe("twill");
      expect(conflist.plugins.map((p) => p.type)).toEqual(["twill", "portmap"]);
      // The daemon pod wrote the node file the plugin reads (hostPath /run/twill is the node's own directory).
      expect(JSON.parse(readFileSync(n.nodeFile, "utf8")).podCIDRs).toEqual([n.podCIDR]);
    }
  });

  it("connects kubelet's pods across nodes (ping and TCP)", async () => {
    const ping = await probeMatrix(lab.state.pods, allPairs);
    const tcp = await probeTcpMatrix(lab.state.pods, allPairs);
    expect(ping.filter((p) => !p.ok).map((p) => `${p.from.name}→${p.to.name}`)).toEqual([]);
    expect(tcp.filter((p) => !p.ok).map((p) => `${p.from.name}→${p.to.name}`)).toEqual([]);
    expect(ping.some((p) => p.from.node !== p.to.node)).toBe(true);
  });

  it("a pod is reachable the moment it is Ready: a single ping from a pod on each node succeeds, for every new pod", async () => {
    // Fail-closed drops a new address until the daemon has its policy in the kernel; the CNI ADD waits for
    // that (docs/cni.md), so kubelet cannot report the pod Ready before. One echo request each, no retry:
    // a drop is a failure, not a delay.
    for (const n of lab.state.nodes) {
      const nodeFile = JSON.parse(readFileSync(n.nodeFile, "utf8")) as { daemonSocket?: string };
      expect(nodeFile.daemonSocket).toBe("daemon.sock");
      expect(statSync(join(dirname(n.nodeFile), "daemon.sock")).mode & 0o777).toBe(0o600);
    }
    const names = Array.from({ length: 12 }, (_, i) => `reach${i}`);
    const probes: Promise<string[]>[] = [];
    const done = new Set<string>();
    let allReady!: () => void;
    const ready = new Promise<void>((r) => (allReady = r));
    const req = await new Watch(lab.kc).watch(
      "/api/v1/namespaces/default/pods",
      { labelSelector: "reach=yes" },
      (_type: string, pod: V1Pod) => {
        const name = pod.metadata?.name ?? "";
        const ip = pod.status?.podIP;
        if (done.has(name) || !ip || !pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return;
        done.add(name);
        probes.push(
          Promise.all(lab.state.pods.map((from) => execIn(from.ns, ["ping", "-c1", "-W2", ip], { allowFailure: true }).then((r) => (r.code === 0 ? "" : `${from.name}→${name} (${ip})`)))).then((r) => r.filter(Boolean)),
        );
        if (done.size === names.length) allReady();
      },
      () => {},
    );
    const core = lab.kc.makeApiClient(CoreV1Api);
    try {
      await Promise.all(names.map((name, i) => core.createNamespacedPod({ namespace: "default", body: kubeletPodSpec(lab.state.nodes[i % 2]!.name, name, { labels: { reach: "yes" } }) })));
      await ready;
      expect((await Promise.all(probes)).flat()).toEqual([]);
      // The plugin said so too: each ADD returned after the daemon's "programmed".
      const programmed = lab.state.nodes.flatMap((n) => readFileSync(n.kubelet!.cniLog, "utf8").split("\n").filter((l) => l.includes('"policyProgrammed":true')));
      for (const name of names) expect(programmed.some((l) => l.includes(`"pod":"default/${name}"`)), name).toBe(true);
    } finally {
      req.abort();
      await Promise.all(names.map((name) => deleteKubeletPod(lab.kc, { name, namespace: "default" }).catch(() => {})));
    }
  }, 300_000);
});
