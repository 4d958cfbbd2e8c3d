import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Container, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { exec } from "../lib/kernel/exec.ts";
import { addNetns, netnsPath } from "../lib/kernel/netns.ts";
import { TwillError } from "../lib/errors.ts";
import { writeNodeFile } from "../lib/node-file.ts";
import { CLUSTER_CIDR, nodeDir, nodeIp, nodeName, nodeNs, podNs } from "./names.ts";
import type { KubeletInfo } from "./kubelet/node.ts";

// Cluster objects as a kubelet would make them: Nodes registered with their
// underlay InternalIP, Pods bound to a node whose network Twill's CNI plugin
// sets up exactly as a runtime calls it, and whose IPs are written back to
// status.

const REPO = resolve(import.meta.dirname, "..");
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export interface LabNode {
  name: string;
  ns: string;
  ip: string;
  podCIDR: string;
  nodeFile: string;
  ipamDir: string;
  /** This node's own files (node file, IPAM, CNI log). */
  dir: string;
  /** Set when a real kubelet and containerd run the node (--kubelet). */
  kubelet?: KubeletInfo;
}

export interface LabPod {
  name: string;
  namespace: string;
  node: string;
  ns: string;
  ip: string;
  containerId: string;
  /** Created with PodSpecOptions.podArgs: DEL passes the identity too. */
  podArgs?: boolean;
}

export async function registerNode(kc: KubeConfig, i: number): Promise<{ name: string; ip: string }> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = nodeName(i);
  const ip = nodeIp(i);
  const node: V1Node = {
    metadata: { name, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" } },
    spec: {},
  };
  await core.createNode({ body: node });
  await core.patchNodeStatus(
    { name, body: { status: { addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }] } } },
    merge,
  );
  return { name, ip };
}

/** Waits for kube-controller-manager to give the node its pod CIDR. */
export async function waitPodCidr(kc: KubeConfig, name: string, timeoutMs = 60_000): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const n = await core.readNode({ name });
    if (n.spec?.podCIDR) return n.spec.podCIDR;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new TwillError("LAB_NODE_CIDR", `node ${name} got no spec.podCIDR from kube-controller-manager within ${timeoutMs / 1000} s`);
}

export function nodeFiles(lab: string, name: string): { nodeFile: string; ipamDir: string } {
  const dir = nodeDir(lab, name);
  mkdirSync(dir, { recursive: true });
  return { nodeFile: join(dir, "node.json"), ipamDir: join(dir, "ipam") };
}

/** Without the daemon (--no-daemon), the lab writes each node's node file itself. */
export function writeLabNodeFile(node: LabNode, mtu = 1500): void {
  writeNodeFile({ version: 1, nodeName: node.name, podCIDRs: [node.podCIDR], mtu, clusterCIDRs: [CLUSTER_CIDR] }, node.nodeFile);
}

export function cniConfig(node: LabNode): Record<string, unknown> {
  return {
    cniVersion: "1.1.0",
    name: "twill",
    type: "twill",
    nodeFile: node.nodeFile,
    logFile: join(node.dir, "cni.log"),
    ipam: { type: "twill-ipam", dataDir: node.ipamDir },
  };
}

/** `pod`: the CNI_ARGS kubelet passes (K8S_POD_*), so the plugin notifies the daemon as in a real cluster. */
async function cni(node: LabNode, command: string, containerId: string, netns: string, pod?: { namespace: string; name: string; uid: string }): Promise<string> {
  const args = pod ? { CNI_ARGS: `K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}` } : {};
  const r = await exec(["nsenter", `--net=${netnsPath(node.ns)}`, join(REPO, "dist/cni/twill")], {
    input: JSON.stringify(cniConfig(node)),
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: `${join(REPO, "dist/cni")}:/usr/lib/cni`, ...args },
    allowFailure: true,
  });
  if (r.code !== 0) throw new TwillError("LAB_CNI", `CNI ${command} for ${containerId} on ${node.name} failed`, r.stdout + r.stderr);
  return r.stdout;
}

export interface PodSpecOptions {
  labels?: Record<string, string>;
  namespace?: string;
  /** Containers with their ports (named ports matter to NetworkPolicy); default one container, no ports. */
  containers?: V1Container[];
  /** Exactly these labels (no app=<name> added). */
  exactLabels?: boolean;
  /** Wait until the daemon admits the pod (fail closed); default true. */
  waitPolicy?: boolean;
  /** Pass the pod's identity in CNI_ARGS as kubelet does (the plugin's daemon handshake and CNI metrics); default false. */
  podArgs?: boolean;
}

export async function createPod(kc: KubeConfig, lab: string, node: LabNode, name: string, opts: PodSpecOptions = {}): Promise<LabPod> {
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = opts.namespace ?? "default";
  const pod: V1Pod = {
    metadata: { name, namespace, labels: opts.exactLabels ? { ...(opts.labels ?? {}) } : { app: name, ...(opts.labels ?? {}) } },
    spec: { nodeName: node.name, automountServiceAccountToken: false, containers: opts.containers ?? [{ name: "app", image: "twill-lab/netns" }] },
  };
  const created = await core.createNamespacedPod({ namespace, body: pod });
  const ns = podNs(lab, namespace === "default" ? name : `${namespace}-${name}`);
  await addNetns(ns);
  const containerId = created.metadata?.uid ?? name;
  const identity = opts.podArgs ? { namespace, name, uid: containerId } : undefined;
  const result = JSON.parse(await cni(node, "ADD", containerId, netnsPath(ns), identity)) as { ips: { address: string }[] };
  const ips = result.ips.map((i) => i.address.split("/")[0]!);
  await core.patchNamespacedPodStatus(
    {
      name,
      namespace,
      body: {
        status: {
          phase: "Running",
          hostIP: node.ip,
          podIP: ips[0],
          podIPs: ips.map((ip) => ({ ip })),
          conditions: [{ type: "Ready", status: "True" }],
        },
      },
    },
    merge,
  );
  if (opts.waitPolicy !== false) await waitPolicyReady(node, ips[0]!);
  return { name, namespace, node: node.name, ns, ip: ips[0]!, containerId, ...(identity ? { podArgs: true } : {}) };
}

/**
 * Twill fails closed: a new pod's traffic is dropped until the node's daemon
 * has programmed its NetworkPolicy (its address is in the `ready` set). A
 * kubelet would report the pod Running before that; the lab waits, so what it
 * hands out can talk at once. Nodes without the policy table do not wait.
 */
export async function waitPolicyReady(node: LabNode, ip: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const member = new RegExp(`[\\s{,]${ip.replaceAll(".", "\\.")}[\\s,}]`);
  for (;;) {
    const r = await exec(["ip", "netns", "exec", node.ns, "nft", "list", "set", "inet", "twill-policy", "ready"], { allowFailure: true });
    if (r.code !== 0 || member.test(r.stdout)) return;
    if (Date.now() > deadline) throw new TwillError("LAB_POLICY_READY", `pod ${ip} on ${node.name} was not admitted by the daemon's NetworkPolicy (fail closed) within ${timeoutMs / 1000} s: is the daemon running? see ${node.dir}/daemon.log`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function deletePodNetwork(node: LabNode, pod: LabPod): Promise<void> {
  await cni(node, "DEL", pod.containerId, netnsPath(pod.ns), pod.podArgs ? { namespace: pod.namespace, name: pod.name, uid: pod.containerId } : undefined);
}

/** Waits until the namespace's default ServiceAccount exists (Pod admission needs it). */
export async function waitDefaultServiceAccount(kc: KubeConfig, namespace = "default", timeoutMs = 60_000): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await core.readNamespacedServiceAccount({ name: "default", namespace });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new TwillError("LAB_SERVICE_ACCOUNT", `the default ServiceAccount of ${namespace} did not appear`);
}

export const labNodeFor = (lab: string, i: number, podCIDR: string, files: { nodeFile: string; ipamDir: string }): LabNode => ({
  name: nodeName(i),
  ns: nodeNs(lab, nodeName(i)),
  ip: nodeIp(i),
  podCIDR,
  dir: nodeDir(lab, nodeName(i)),
  ...files,
});
