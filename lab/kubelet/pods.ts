import { CoreV1Api, type KubeConfig, type V1Container, type V1Pod } from "@kubernetes/client-node";
import { TwillError } from "../../lib/errors.ts";
import { exec } from "../../lib/kernel/exec.ts";
import type { LabNode, LabPod } from "../cluster.ts";
import { podNs } from "../names.ts";
import { POD_IMAGE } from "./images.ts";
import type { ContainerdPaths } from "./containerd.ts";
import { ctr } from "./containerd.ts";

// Pods as a user makes them: Pod objects bound to a node (spec.nodeName, no
// scheduler needed), run by that node's kubelet and containerd, networked by
// Twill through the CRI's CNI calls. The lab then names each pod's network
// namespace (`ip netns attach` to its container's pid) so probes can enter it
// the way they enter the lab's other pods.

/** The pod's main process: exits on TERM at once, so deletion takes no grace period. */
export const POD_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];

export interface KubeletPodOptions {
  namespace?: string;
  labels?: Record<string, string>;
  containers?: V1Container[];
}

export function kubeletPodSpec(node: string, name: string, o: KubeletPodOptions = {}): V1Pod {
  return {
    metadata: { name, namespace: o.namespace ?? "default", labels: { app: name, ...(o.labels ?? {}) } },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 5,
      containers: o.containers ?? [{ name: "app", image: POD_IMAGE, imagePullPolicy: "Never", command: POD_COMMAND }],
    },
  };
}

/** Waits until the pod is Ready with its addresses reported; returns it. */
export async function waitPodReady(kc: KubeConfig, namespace: string, name: string, timeoutMs = 120_000): Promise<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  let last: V1Pod | undefined;
  while (Date.now() < deadline) {
    last = await core.readNamespacedPod({ name, namespace });
    const ready = last.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    if (ready && last.status?.podIPs?.length) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new TwillError("LAB_POD_NOT_READY", `pod ${namespace}/${name} was not Ready with an IP within ${timeoutMs / 1000} s; see the node's kubelet.log and containerd.log`, JSON.stringify(last?.status ?? {}).slice(0, 1500));
}

/** The host pid of a running container (containerd's task list). */
export async function containerPid(cd: ContainerdPaths, containerId: string): Promise<number> {
  const { stdout } = await ctr(cd, ["tasks", "ls"]);
  for (const line of stdout.split("\n").slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id === containerId && status === "RUNNING") return Number(pid);
  }
  throw new TwillError("LAB_POD_TASK", `container ${containerId} has no running task in containerd`, stdout);
}

/** Names a pod's network namespace on the machine (a bind mount of /proc/<pid>/ns/net, not a new namespace). */
export async function attachPodNetns(name: string, pid: number): Promise<void> {
  await exec(["ip", "netns", "attach", name, String(pid)]);
}

export async function createKubeletPod(kc: KubeConfig, lab: string, node: LabNode, cd: ContainerdPaths, name: string, o: KubeletPodOptions = {}): Promise<LabPod> {
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = o.namespace ?? "default";
  await core.createNamespacedPod({ namespace, body: kubeletPodSpec(node.name, name, o) });
  return attachReadyPod(kc, lab, node, cd, namespace, name);
}

/** Waits for a created pod and names its netns; the LabPod tests probe with. */
export async function attachReadyPod(kc: KubeConfig, lab: string, node: LabNode, cd: ContainerdPaths, namespace: string, name: string): Promise<LabPod> {
  const pod = await waitPodReady(kc, namespace, name);
  const containerId = (pod.status?.containerStatuses?.[0]?.containerID ?? "").replace(/^containerd:\/\//, "");
  const pid = await containerPid(cd, containerId);
  const ns = podNs(lab, namespace === "default" ? name : `${namespace}-${name}`);
  await attachPodNetns(ns, pid);
  return { name, namespace, node: node.name, ns, ip: pod.status!.podIPs![0]!.ip, containerId };
}

/** Deletes a pod and waits until kubelet has confirmed it gone (its sandbox, and so its CNI DEL, done). */
export async function deleteKubeletPod(kc: KubeConfig, pod: { name: string; namespace: string; ns?: string }, timeoutMs = 120_000): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  // Only the name goes; the namespace dies with the pod's sandbox.
  if (pod.ns) await exec(["ip", "netns", "delete", pod.ns], { allowFailure: true });
  await core.deleteNamespacedPod({ name: pod.name, namespace: pod.namespace });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await core.readNamespacedPod({ name: pod.name, namespace: pod.namespace });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return;
      throw err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new TwillError("LAB_POD_DELETE", `pod ${pod.namespace}/${pod.name} was not gone within ${timeoutMs / 1000} s`);
}
