import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { TwillError } from "../lib/errors.ts";
import { exec } from "../lib/kernel/exec.ts";
import { deleteNetns, listNetns } from "../lib/kernel/netns.ts";
import { createPod, labNodeFor, nodeFiles, registerNode, waitDefaultServiceAccount, waitPodCidr, writeLabNodeFile, type LabNode, type LabPod } from "./cluster.ts";
import { startDaemon, waitDaemonReady, writeDaemonFiles } from "./daemons.ts";
import { applyManifests, serviceAccountToken } from "./install.ts";
import { CLUSTER_CIDR, DNS_SERVICE_IP } from "./names.ts";
import { startControlPlane } from "./controlplane.ts";
import { adminKubeconfig, kubeConfig, startForwarder, type Credentials, type Forwarder } from "./kube.ts";
import { processAlive } from "./process.ts";
import { LAB_PREFIX, LAB_ROOT, labDir, newLabName } from "./names.ts";
import { createCa } from "./pki.ts";
import { createControlPlaneHost, createNodeHost, createRouterHost, createUnderlay } from "./topology.ts";
import { labsWithCgroups, removeLabCgroups } from "./kubelet/cgroups.ts";
import { removeMountNamespaces } from "./kubelet/mountns.ts";
import { createKubeletPods, seedImages, startKubeletNodes, writeLabImagesAside } from "./kubelet/lab-nodes.ts";
import type { LabImages } from "./kubelet/node.ts";
import { applyDaemonSet, waitDaemonSetReady } from "./kubelet/daemonset.ts";
import { controlPlaneBinaries } from "./binaries.ts";
import { applyObject } from "./install.ts";
import { TWILL_PROXY, waitEndpointsProgrammed, type ProxyMode } from "./addons/kube-proxy.ts";
import { corednsObjects, waitDeploymentAvailable } from "./addons/coredns.ts";
import { ECHO_NAMESPACE, ECHO_TARGET_PORT, echoObjects } from "./addons/echo.ts";

export { controlPlaneBinaries } from "./binaries.ts";

// A whole lab: control plane + N nodes + pods, described by a state file in
// its directory so that tests in other processes can attach to it and a
// later run can clean it up if its owner died.

export type Backend = "vxlan" | "host-gw" | "bgp";

export interface LabOptions {
  nodes: number;
  podsPerNode: number;
  backend: Backend;
  /** Run Twill's node daemon on every node (default); without it pods reach only their own node. */
  daemon?: boolean;
  directRouting?: boolean;
  /** The cluster's pod CIDR (kube-controller-manager's --cluster-cidr); default 10.244.0.0/16. */
  clusterCIDR?: string;
  /** ConfigMap switches for the daemons (default: masquerade and policy on). */
  masquerade?: boolean;
  policy?: boolean;
  /** Real kubelets and containerd run the nodes and their pods (docs/lab.md). */
  kubelet?: boolean;
  /** With kubelet: Twill runs as the manifest's DaemonSet from a lab-built image, not as per-node processes. */
  daemonSet?: boolean;
  /** Nodes' underlay devices take GSO/GRO packets up to this size (BIG TCP, as an operator sets a capable NIC); default the kernel's 64 KiB. */
  underlayGso?: number;
  /**
   * With kubelet: what a real cluster runs besides the CNI — kube-proxy on every node (in this mode), CoreDNS
   * behind kube-dns, and the lab's `echo` Services (lab/addons, docs/lab.md).
   */
  addons?: { proxyMode: ProxyMode };
  /** With kubelet: more OCI image archives every node's containerd holds from the start (upstream's test images). */
  extraImages?: string[];
  log?: (msg: string) => void;
  /** Told the lab's name as soon as it has one, so a signal during start-up can tear it down. */
  onName?: (name: string) => void;
}

export interface LabState {
  name: string;
  ownerPid: number;
  dir: string;
  backend: Backend;
  socket: string;
  admin: Credentials;
  daemon: boolean;
  /** Nodes run by real kubelets (each LabNode has its `kubelet` info). */
  kubelet?: boolean;
  /** Twill's daemon runs as the DaemonSet (pods in twill-system), not as lab processes. */
  daemonSet?: boolean;
  /** What a (re)started daemon needs. */
  daemonFiles?: { config: string; kubeconfig: string };
  /** LabOptions.underlayGso, for nodes added later. */
  underlayGso?: number;
  /** The Kubernetes binaries the lab runs (kubectl among them with kubelets). */
  bin?: string;
  /** The cluster add-ons that run: kube-proxy's mode, CoreDNS, the echo Services (lab/addons). */
  addons?: { proxyMode: ProxyMode; coredns: true; echo: true };
  nodes: LabNode[];
  pods: LabPod[];
}

export const stateFile = (lab: string) => join(labDir(lab), "state.json");

export function readState(lab: string): LabState {
  return JSON.parse(readFileSync(stateFile(lab), "utf8")) as LabState;
}

function saveState(s: LabState): void {
  writeFileSync(stateFile(s.name), JSON.stringify(s, null, 2));
}


/** Removes a lab: every process in its namespaces, the namespaces, its files. */
export async function destroyLab(lab: string): Promise<void> {
  const namespaces = await listNetns(`${lab}-`);
  // Pods and nodes first, the underlay last.
  for (const ns of namespaces.sort((a, b) => Number(a.endsWith("-ul")) - Number(b.endsWith("-ul")))) await deleteNetns(ns);
  // Kubelet nodes: containers still running in pod netns, then the nodes' mount namespaces (their mounts go with them).
  const left = await removeLabCgroups(lab);
  await removeMountNamespaces(labDir(lab));
  rmSync(labDir(lab), { recursive: true, force: true });
  if (left.length) throw new TwillError("LAB_CGROUPS_LEFT", `lab ${lab}: cgroups could not be removed; run npm run lab -- down again`, left.join("\n"));
}

/** Labs left behind by a run that was killed (their owner process is gone). */
export async function staleLabs(): Promise<string[]> {
  const names = new Set<string>();
  if (existsSync(LAB_ROOT)) for (const d of readdirSync(LAB_ROOT)) names.add(d);
  for (const ns of await listNetns(LAB_PREFIX)) names.add(ns.split("-")[0]!);
  for (const lab of labsWithCgroups(LAB_PREFIX)) names.add(lab);
  const stale: string[] = [];
  for (const lab of names) {
    let owner = 0;
    try {
      owner = readState(lab).ownerPid;
    } catch {
      owner = 0;
    }
    if (!owner || !processAlive(owner)) stale.push(lab);
  }
  return stale;
}

export interface RunningLab {
  state: LabState;
  kc: KubeConfig;
  forwarder: Forwarder;
  /** A kubeconfig file for kubectl, through this process's relay (startLab only). */
  kubeconfig?: string;
  close(): Promise<void>;
}

export async function startLab(opts: LabOptions): Promise<RunningLab> {
  const log = opts.log ?? (() => {});
  for (const lab of await staleLabs()) {
    log(`removing lab ${lab} left behind by a killed run`);
    await destroyLab(lab);
  }
  const kubeletMode = opts.kubelet || opts.daemonSet;
  const addons = kubeletMode ? opts.addons : undefined;
  const bin = await controlPlaneBinaries(log, kubeletMode);
  const name = newLabName();
  opts.onName?.(name);
  const dir = labDir(name);
  mkdirSync(join(dir, "pki"), { recursive: true });
  const daemon = opts.daemon ?? true;
  // No kube-proxy: the daemon proxies Services.
  const serviceProxy = addons?.proxyMode === TWILL_PROXY;
  const state: LabState = { name, ownerPid: process.pid, dir, backend: opts.backend, socket: "", admin: { ca: "" }, daemon, ...(kubeletMode ? { kubelet: true } : {}), ...(opts.daemonSet ? { daemonSet: true } : {}), ...(opts.underlayGso ? { underlayGso: opts.underlayGso } : {}), bin, ...(addons ? { addons: { proxyMode: addons.proxyMode, coredns: true, echo: true } } : {}), nodes: [], pods: [] };
  saveState(state);
  try {
    const t0 = performance.now();
    // Written and imported into the nodes' seed beside the control plane's start-up.
    const images = kubeletMode ? writeLabImagesAside(dir, bin, { twill: opts.daemonSet, coredns: !!addons }).then((i) => withExtra(i, opts.extraImages)) : undefined;
    await createUnderlay(name);
    const seed = images ? seedImages(name, dir, images, log) : undefined;
    seed?.catch(() => {});
    await createControlPlaneHost(name);
    await createRouterHost(name);
    const pki = await createCa(join(dir, "pki"));
    log(`starting etcd, kube-apiserver, kube-controller-manager in namespace ${name}-cp`);
    const cp = await startControlPlane(name, dir, bin, pki, opts.clusterCIDR, 24, { kubelets: kubeletMode });
    state.socket = cp.socket;
    state.admin = { ca: pki.ca, cert: cp.admin.cert, key: cp.admin.key };
    saveState(state);
    log(`apiserver ready after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const kc = kubeConfig(cp.forwarder.port, state.admin);
    const kubelets = kubeletMode
      ? await startKubeletNodes(kc, name, dir, opts.nodes, pki, bin, seed!, !!opts.daemonSet, log, addons ? { proxy: { mode: addons.proxyMode, clusterCIDR: opts.clusterCIDR ?? CLUSTER_CIDR } } : {})
      : undefined;
    if (kubelets) state.nodes.push(...kubelets.nodes);
    for (let i = 1; !kubelets && i <= opts.nodes; i++) {
      await createNodeHost(name, i, opts.underlayGso);
      await registerNode(kc, i);
    }
    for (let i = 1; !kubelets && i <= opts.nodes; i++) {
      const podCIDR = await waitPodCidr(kc, `node${i}`);
      state.nodes.push(labNodeFor(name, i, podCIDR, nodeFiles(name, `node${i}`)));
    }
    saveState(state);
    const at = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    log(`nodes registered after ${at()}: ${state.nodes.map((n) => `${n.name} ${n.ip} podCIDR ${n.podCIDR}`).join(", ")}`);
    if (daemon && opts.daemonSet) {
      const config = { ...(opts.clusterCIDR ? { clusterCIDR: opts.clusterCIDR } : {}), ...(opts.directRouting ? { "vxlan.directRouting": true } : {}), masquerade: opts.masquerade ?? true, policy: opts.policy ?? true, ...(serviceProxy ? { serviceProxy } : {}) };
      await applyDaemonSet(cp.forwarder.port, state.admin, opts.backend, { kubectl: join(bin, "kubectl"), dir, config });
      await waitDaemonSetReady(kc, state.nodes);
      log(`twill DaemonSet (kubectl apply -k of ${join(dir, "twill-overlay")}; image built by the lab, in every node's containerd) ready on every node after ${at()}`);
    } else if (daemon) {
      await applyManifests(cp.forwarder.port, state.admin);
      const token = await serviceAccountToken(kc);
      state.daemonFiles = writeDaemonFiles(dir, pki.ca, token, { backend: opts.backend, ...(opts.clusterCIDR ? { clusterCIDR: opts.clusterCIDR } : {}), ...(opts.directRouting ? { directRouting: true } : {}), masquerade: opts.masquerade ?? true, policy: opts.policy ?? true, ...(serviceProxy ? { serviceProxy } : {}) });
      saveState(state);
      const procs = state.nodes.map((n) => startDaemon(n, state.daemonFiles!));
      await Promise.all(state.nodes.map((n, k) => waitDaemonReady(n, procs[k]!)));
      log(`twill daemon (${opts.backend}${opts.directRouting ? ", directRouting" : ""}) ready on every node, as ServiceAccount twill-system/twill`);
    } else {
      for (const n of state.nodes) writeLabNodeFile(n);
    }
    await waitDefaultServiceAccount(kc);
    if (kubelets) {
      await kubelets.ready();
      log(`nodes Ready after ${at()}`);
      if (addons) {
        // CoreDNS and the echo Services, and the lab's own pods, side by side.
        for (const obj of [...corednsObjects(), ...echoObjects(opts.nodes)]) await applyObject(cp.forwarder.port, state.admin, obj);
        const [pods] = await Promise.all([createKubeletPods(kc, name, state.nodes, opts.podsPerNode), waitDeploymentAvailable(kc, "kube-system", "coredns"), waitDeploymentAvailable(kc, ECHO_NAMESPACE, "echo")]);
        state.pods.push(...pods);
        await waitEndpointsProgrammed(state.nodes, addons.proxyMode, await addonEndpoints(kc));
        log(`CoreDNS (kube-dns ${DNS_SERVICE_IP}) and the echo Deployment Available and in every node's ${serviceProxy ? "Twill proxy" : "kube-proxy"} rules, the lab's pods Ready after ${at()}`);
      } else {
        state.pods.push(...(await createKubeletPods(kc, name, state.nodes, opts.podsPerNode)));
      }
    }
    for (const node of kubelets ? [] : state.nodes) {
      for (let j = 1; j <= opts.podsPerNode; j++) {
        state.pods.push(await createPod(kc, name, node, `${node.name}-pod${j}`));
      }
    }
    saveState(state);
    const kubeconfig = writeAdminKubeconfig(state, cp.forwarder.port);
    return { state, kc, forwarder: cp.forwarder, kubeconfig, close: () => closeLab(state, cp.forwarder) };
  } catch (err) {
    // Keep the logs of a lab that failed to come up; everything else goes.
    const kept = join(tmpdir(), `twill-lab-${name}-logs`);
    cpSync(join(dir, "logs"), kept, { recursive: true, force: true });
    // Kubelet nodes log per node (kubelet, containerd, daemon, CNI).
    for (const n of existsSync(join(dir, "nodes")) ? readdirSync(join(dir, "nodes")) : []) {
      for (const f of readdirSync(join(dir, "nodes", n)).filter((f) => f.endsWith(".log"))) cpSync(join(dir, "nodes", n, f), join(kept, `${n}-${f}`));
      // Containers' logs, as kubelet writes them (the DaemonSet's pods among them).
      if (existsSync(join(dir, "nodes", n, "pod-logs"))) cpSync(join(dir, "nodes", n, "pod-logs"), join(kept, `${n}-pod-logs`), { recursive: true });
    }
    log(`lab failed to come up; its logs are in ${kept}`);
    await destroyLab(name);
    throw err;
  }
}

const withExtra = (images: LabImages, extra: string[] = []): LabImages => ({ ...images, extra: [...(images.extra ?? []), ...extra] });

/** The add-ons' endpoints as kube-proxy's DNAT rules name them: CoreDNS's DNS port, the echo pods' HTTP port. */
async function addonEndpoints(kc: KubeConfig): Promise<{ ip: string; port: number }[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const ips = async (namespace: string, labelSelector: string) => (await core.listNamespacedPod({ namespace, labelSelector })).items.map((p) => p.status?.podIP ?? "").filter(Boolean);
  return [...(await ips("kube-system", "k8s-app=kube-dns")).map((ip) => ({ ip, port: 53 })), ...(await ips(ECHO_NAMESPACE, "app=echo")).map((ip) => ({ ip, port: ECHO_TARGET_PORT }))];
}

async function closeLab(state: LabState, forwarder: Forwarder): Promise<void> {
  await forwarder.close();
  await destroyLab(state.name);
}

/** Attaches to a running lab from another process (a test file). */
export async function attachLab(lab: string): Promise<RunningLab> {
  const state = readState(lab);
  const forwarder = await startForwarder(state.socket);
  const kc = kubeConfig(forwarder.port, state.admin);
  return { state, kc, forwarder, close: () => forwarder.close() };
}

/** Adds node `i` to a running lab (namespace, Node object, daemon) and returns it once programmed. */
export async function addNode(lab: RunningLab, i: number): Promise<LabNode> {
  const s = lab.state;
  await createNodeHost(s.name, i, s.underlayGso);
  await registerNode(lab.kc, i);
  const podCIDR = await waitPodCidr(lab.kc, `node${i}`);
  const node = labNodeFor(s.name, i, podCIDR, nodeFiles(s.name, `node${i}`));
  if (s.daemonFiles) await waitDaemonReady(node, startDaemon(node, s.daemonFiles));
  else writeLabNodeFile(node);
  return node;
}

/** Pids of processes in a namespace whose command line contains `match`. */
export async function pidsIn(ns: string, match: string): Promise<number[]> {
  const { stdout } = await exec(["ip", "netns", "pids", ns], { allowFailure: true });
  const out: number[] = [];
  for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(match)) out.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The command line of a running process, to start it again the same way. */
export function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

/** A kubeconfig for this machine's tools (kubectl), through this process's loopback relay. */
export function writeAdminKubeconfig(s: LabState, port: number): string {
  const path = join(s.dir, "admin.kubeconfig");
  writeFileSync(path, adminKubeconfig(s, `https://127.0.0.1:${port}`, "kubernetes"), { mode: 0o600 });
  return path;
}
