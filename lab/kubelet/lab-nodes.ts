import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { TwillError } from "../../lib/errors.ts";
import { labNodeFor, type LabNode, type LabPod } from "../cluster.ts";
import { nodeName, underlayNs } from "../names.ts";
import type { Pki } from "../pki.ts";
import { tail, type LabProcess } from "../process.ts";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { kubeletFailed } from "./kubelet.ts";
import { imageArchives, startKubeletNode, type LabImages, type NodeProxy } from "./node.ts";
import { seedRoot } from "./image-seed.ts";
import { createNodeMountNs } from "./mountns.ts";
import { runsKubeProxy, waitKubeProxyHealthy } from "../addons/kube-proxy.ts";
import { attachReadyPod, kubeletPodSpec } from "./pods.ts";

// The lab's --kubelet mode: N nodes run by kubelet + containerd, registered
// by kubelet itself, and pods run by them.

async function waitRegistered(kc: KubeConfig, name: string, kubelet: LabProcess, timeoutMs = 120_000): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (kubelet.exited()) throw kubeletFailed(kubelet, name);
    try {
      const n = await core.readNode({ name });
      if (n.spec?.podCIDR) return n.spec.podCIDR;
    } catch {
      // not registered yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new TwillError("LAB_KUBELET", `kubelet on ${name} did not register its Node (with a pod CIDR) within ${timeoutMs / 1000} s; see ${kubelet.log}`, tail(kubelet.log, 25));
}

async function waitNodeReady(kc: KubeConfig, name: string, kubelet: LabProcess, timeoutMs = 120_000): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (kubelet.exited()) throw kubeletFailed(kubelet, name);
    const n = await core.readNode({ name });
    const ready = n.status?.conditions?.find((c) => c.type === "Ready");
    if (ready?.status === "True") return;
    last = `${ready?.reason ?? ""}: ${ready?.message ?? ""}`;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new TwillError("LAB_NODE_NOT_READY", `node ${name} did not become Ready within ${timeoutMs / 1000} s (${last}); see ${kubelet.log}`, tail(kubelet.log, 25));
}

export interface KubeletNodes {
  nodes: LabNode[];
  kubelets: LabProcess[];
  /** Resolves once every Node is Ready (runtime and CNI up: needs the daemon's node file) and kube-proxy is healthy. */
  ready(): Promise<void>;
}

/**
 * Writes the image archives every node imports (write-images.ts, in a child process so it runs while the
 * control plane starts): the pod and pause images, the Twill image for the DaemonSet, CoreDNS's with the add-ons.
 */
export function writeLabImagesAside(dir: string, bin: string, o: { twill?: boolean; coredns?: boolean }): Promise<LabImages> {
  const args = [join(import.meta.dirname, "write-images.ts"), dir, bin, ...(o.twill ? ["--twill"] : []), ...(o.coredns ? ["--coredns"] : [])];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new TwillError("LAB_IMAGES", "writing the lab's images failed", `${stderr}`.slice(-2000)));
      else resolve(JSON.parse(stdout) as LabImages);
    });
  });
}

export interface KubeletNodesOptions {
  /** kube-proxy on every node. */
  proxy?: NodeProxy;
}

/**
 * The containerd root every node starts from (image-seed.ts), begun as soon as the archives are written: a seed
 * containerd of its own (in the underlay namespace, which exists first, and a mount namespace of its own) imports
 * them while the control plane is still starting.
 */
export async function seedImages(lab: string, dir: string, images: Promise<LabImages>, log: (m: string) => void): Promise<string> {
  const mountNs = await createNodeMountNs(dir, "image-seed", join(dir, "image-seed"));
  return seedRoot(imageArchives(await images), underlayNs(lab), mountNs, log);
}

export async function startKubeletNodes(kc: KubeConfig, lab: string, dir: string, count: number, pki: Pki, bin: string, seed: Promise<string>, daemonSet: boolean, log: (m: string) => void, o: KubeletNodesOptions = {}): Promise<KubeletNodes> {
  const started = await Promise.all(Array.from({ length: count }, (_, k) => startKubeletNode(lab, dir, k + 1, pki, bin, seed, daemonSet, o.proxy)));
  log(`containerd + kubelet${o.proxy ? (runsKubeProxy(o.proxy.mode) ? ` + kube-proxy (${o.proxy.mode})` : " (no kube-proxy: Twill's daemon proxies Services)") : ""} started on ${count} nodes; waiting for kubelet to register them`);
  const nodes: LabNode[] = [];
  for (let i = 1; i <= count; i++) {
    const s = started[i - 1]!;
    const podCIDR = await waitRegistered(kc, nodeName(i), s.kubelet);
    nodes.push({ ...labNodeFor(lab, i, podCIDR, { nodeFile: s.info.nodeFile, ipamDir: s.info.ipamDir }), kubelet: s.info });
  }
  const kubelets = started.map((s) => s.kubelet);
  return {
    nodes,
    kubelets,
    ready: async () => {
      await Promise.all(nodes.map((n, k) => waitNodeReady(kc, n.name, kubelets[k]!)));
      await Promise.all(nodes.map((n, k) => (started[k]!.kubeProxy ? waitKubeProxyHealthy(n.ns, n, started[k]!.kubeProxy!) : undefined)));
      log(`nodes Ready (registered by kubelet)${o.proxy && runsKubeProxy(o.proxy.mode) ? ", kube-proxy healthy" : ""}: ${nodes.map((n) => n.name).join(", ")}`);
    },
  };
}

/** `perNode` pods on every node, created at once, returned once Ready with their netns named. */
export async function createKubeletPods(kc: KubeConfig, lab: string, nodes: LabNode[], perNode: number, namespace = "default"): Promise<LabPod[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const wanted = nodes.flatMap((n) => Array.from({ length: perNode }, (_, j) => ({ node: n, name: `${n.name}-pod${j + 1}` })));
  await Promise.all(wanted.map((w) => core.createNamespacedPod({ namespace, body: kubeletPodSpec(w.node.name, w.name, { namespace }) })));
  return Promise.all(wanted.map((w) => attachReadyPod(kc, lab, w.node, w.node.kubelet!.containerd, namespace, w.name)));
}
