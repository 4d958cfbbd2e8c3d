import { underlayKubeconfig } from "../kube.ts";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import { issue, type Pki } from "../pki.ts";
import { CLUSTER_DOMAIN, DNS_SERVICE_IP } from "../names.ts";
import { startIn, tail, type LabProcess } from "../process.ts";

// One kubelet per lab node, next to that node's containerd (same network and
// mount namespaces). It registers the Node itself with a client certificate
// for system:node:<name> in system:nodes, so the apiserver's Node authorizer
// and NodeRestriction admit exactly what a real node may do.

export interface KubeletNode {
  name: string;
  ip: string;
  dir: string;
  cgroupRoot: string;
  containerdSocket: string;
}

export interface KubeletFiles {
  rootDir: string;
  config: string;
  kubeconfig: string;
  log: string;
}

/**
 * Why each setting, on this kind of machine:
 * - failCgroupV1: false: the machine mounts cgroup v1 controllers (hybrid); recent kubelets refuse v1 otherwise.
 * - cgroupDriver cgroupfs: containerd 1.6 lacks the RuntimeConfig CRI call, so kubelet uses its own setting, and
 *   there is no systemd to delegate to.
 * - cgroupRoot per node: several kubelets on one machine must not manage one kubepods tree.
 * - protectKernelDefaults: never write machine-wide sysctls (the node's mount namespace shows kubelet's values).
 * - thresholds at 100 % / 1 %: the lab shares a disk with everything else; no image GC, no eviction.
 */
export function kubeletConfig(n: KubeletNode, ca: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: ${n.cgroupRoot}
cgroupsPerQOS: true
failSwapOn: false
protectKernelDefaults: true
address: ${n.ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: ${ca}}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://${n.containerdSocket}
imageServiceEndpoint: unix://${n.containerdSocket}
podLogsDir: ${join(n.dir, "pod-logs")}
resolvConf: ""
clusterDNS: [${DNS_SERVICE_IP}]
clusterDomain: ${CLUSTER_DOMAIN}
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 250
`;
}

export async function writeKubeletFiles(pki: Pki, n: KubeletNode): Promise<KubeletFiles> {
  const dir = join(n.dir, "kubelet");
  const rootDir = join(dir, "root");
  mkdirSync(rootDir, { recursive: true });
  mkdirSync(join(n.dir, "pod-logs"), { recursive: true });
  const cert = await issue(pki, { name: `kubelet-${n.name}`, commonName: `system:node:${n.name}`, organization: "system:nodes", usage: "client" });
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, underlayKubeconfig(pki.ca, n.name, `{client-certificate: "${cert.cert}", client-key: "${cert.key}"}`), { mode: 0o600 });
  const config = join(dir, "config.yaml");
  writeFileSync(config, kubeletConfig(n, pki.ca));
  return { rootDir, config, kubeconfig, log: join(n.dir, "kubelet.log") };
}

export function startKubelet(bin: string, netns: string, mountNs: string, n: KubeletNode, f: KubeletFiles): LabProcess {
  return startIn(netns, `kubelet on ${n.name}`, [
    `--mount=${mountNs}`,
    join(bin, "kubelet"),
    `--config=${f.config}`,
    `--kubeconfig=${f.kubeconfig}`,
    `--root-dir=${f.rootDir}`,
    `--cert-dir=${join(f.rootDir, "pki")}`,
    `--hostname-override=${n.name}`,
    `--node-ip=${n.ip}`,
    "--v=1",
  ], f.log);
}

export function kubeletFailed(p: LabProcess, name: string): TwillError {
  return new TwillError("LAB_KUBELET", `kubelet on ${name} exited; see ${p.log}`, tail(p.log, 25));
}
