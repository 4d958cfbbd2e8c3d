import { copyFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { nodeDir, nodeIp, nodeName } from "../names.ts";
import type { Pki } from "../pki.ts";
import type { LabProcess } from "../process.ts";
import { createNodeHost } from "../topology.ts";
import { createCgroupRoot } from "./cgroups.ts";
import { startContainerd, writeContainerdConfig, type ContainerdPaths } from "./containerd.ts";
import { cloneSeed } from "./image-seed.ts";
import { startKubelet, writeKubeletFiles } from "./kubelet.ts";
import { createNodeMountNs } from "./mountns.ts";
import { runsKubeProxy, startKubeProxy, writeKubeProxyFiles, type ProxyMode } from "../addons/kube-proxy.ts";

// A lab node run by a real kubelet: the node's namespaces, its cgroup root,
// Twill's CNI files installed by `twill install`, containerd with the lab's
// images, then kubelet, which registers the Node.

const REPO = resolve(import.meta.dirname, "../..");

/** What the lab keeps about a kubelet node (in state.json, for tests and teardown). */
export interface KubeletInfo {
  mountNs: string;
  cgroupRoot: string;
  containerd: ContainerdPaths;
  kubeletLog: string;
  containerdLog: string;
  cniLog: string;
  ipamDir: string;
  nodeFile: string;
  /** With the cluster add-ons: kube-proxy's log (its config and kubeconfig are in kube-proxy/ beside it). */
  kubeProxyLog?: string;
}

export interface StartedKubeletNode {
  info: KubeletInfo;
  containerd: LabProcess;
  kubelet: LabProcess;
  kubeProxy?: LabProcess;
}

/** kube-proxy beside kubelet (lab/addons/kube-proxy.ts). */
export interface NodeProxy {
  mode: ProxyMode;
  clusterCIDR: string;
}

/**
 * The conflist `twill install` puts on the node: Twill, then portmap, as the manifest's. Version 1.0.0:
 * containerd 1.6's libcni rejects a 1.1.0 result ("unsupported CNI result version") and Debian's portmap
 * (plugins 1.1.1) stops at 1.0.0 — both seen here.
 */
export function nodeConflist(nodeFile: string, logFile: string, ipamDir: string): string {
  return JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: "twill",
      plugins: [
        { type: "twill", nodeFile, logFile, ipam: { type: "twill-ipam", dataDir: ipamDir } },
        { type: "portmap", capabilities: { portMappings: true }, snat: true },
      ],
    },
    null,
    2,
  );
}

export async function installCni(dir: string, cd: ContainerdPaths, nodeFile: string, ipamDir: string): Promise<string> {
  const cniLog = join(dir, "cni.log");
  const conflist = join(dir, "twill.conflist");
  writeFileSync(conflist, nodeConflist(nodeFile, cniLog, ipamDir));
  const r = await exec([join(REPO, "dist/cni/twill"), "install", "--bin-dir", cd.cniBin, "--conf-dir", cd.cniConf, "--conflist", conflist], { allowFailure: true });
  if (r.code !== 0) throw new TwillError("LAB_CNI_INSTALL", `twill install failed on ${dir}; run bash scripts/build.sh first`, r.stderr);
  // containerd's CRI attaches every pod's loopback with the reference plugin; portmap follows Twill in the chain.
  for (const p of ["loopback", "portmap"]) copyFileSync(join("/usr/lib/cni", p), join(cd.cniBin, p));
  return cniLog;
}

/**
 * Where the manifest's DaemonSet puts things on a node (its hostPath volumes), and the node directory each is
 * inside the node's mount namespace: the init container's `twill install` lands in the node's CNI dirs that
 * containerd reads, the daemon's node file, IPAM data and CNI log in the node's own files.
 */
export const DAEMONSET_BINDS: Record<string, string> = {
  "/opt/cni/bin": "cni/bin",
  "/etc/cni/net.d": "cni/net.d",
  "/run/twill": "run-twill",
  "/var/lib/twill": "var-lib-twill",
  "/var/log/twill": "log-twill",
};

export interface LabImages {
  pod: string;
  pause: string;
  /** With the DaemonSet: the Twill image (twill-image.ts). */
  twill?: string;
  /** More image archives every node gets (add-ons, upstream's e2e images). */
  extra?: string[];
}

/** Every image archive a node's containerd gets. */
export const imageArchives = (images: LabImages) => [images.pause, images.pod, ...(images.twill ? [images.twill] : []), ...(images.extra ?? [])];

/**
 * `seed` is the containerd root holding every image (image-seed.ts). The node's containerd starts on a copy of
 * it: images are there before kubelet starts, and the DaemonSet's pods are placed the moment the Node registers.
 */
export async function startKubeletNode(lab: string, labDir: string, i: number, pki: Pki, bin: string, seed: Promise<string>, daemonSet: boolean, proxy?: NodeProxy): Promise<StartedKubeletNode> {
  const name = nodeName(i);
  const ns = await createNodeHost(lab, i);
  const dir = nodeDir(lab, name);
  const mountNs = await createNodeMountNs(labDir, name, dir, daemonSet ? DAEMONSET_BINDS : {});
  const cgroupRoot = createCgroupRoot(lab, name);
  // kube-proxy needs nothing of containerd's or kubelet's: started first, its rules are there by the time pods are.
  let kubeProxy: LabProcess | undefined;
  let kubeProxyLog: string | undefined;
  if (proxy && runsKubeProxy(proxy.mode)) {
    const pn = { name, ip: nodeIp(i), dir };
    const pf = await writeKubeProxyFiles(pki, pn, proxy.mode, proxy.clusterCIDR);
    kubeProxy = startKubeProxy(bin, ns, mountNs, pn, pf);
    kubeProxyLog = pf.log;
  }

  const cd = writeContainerdConfig(dir);
  let nodeFile = join(dir, "node.json");
  let ipamDir = join(dir, "ipam");
  let cniLog: string;
  if (daemonSet) {
    // The DaemonSet's init container installs Twill; the node comes with the reference plugins, as a real one does.
    nodeFile = join(dir, "run-twill", "node.json");
    ipamDir = join(dir, "var-lib-twill", "ipam");
    cniLog = join(dir, "log-twill", "cni.log");
    for (const p of ["loopback", "portmap"]) copyFileSync(join("/usr/lib/cni", p), join(cd.cniBin, p));
  } else {
    cniLog = await installCni(dir, cd, nodeFile, ipamDir);
  }
  const containerdLog = join(dir, "containerd.log");
  await cloneSeed(await seed, dir);
  const containerd = await startContainerd(ns, mountNs, cd, containerdLog, name);
  const files = await writeKubeletFiles(pki, { name, ip: nodeIp(i), dir, cgroupRoot, containerdSocket: cd.socket });
  const kubelet = startKubelet(bin, ns, mountNs, { name, ip: nodeIp(i), dir, cgroupRoot, containerdSocket: cd.socket }, files);
  return {
    info: { mountNs, cgroupRoot, containerd: cd, kubeletLog: files.log, containerdLog, cniLog, ipamDir, nodeFile, ...(kubeProxyLog ? { kubeProxyLog } : {}) },
    containerd,
    kubelet,
    ...(kubeProxy ? { kubeProxy } : {}),
  };
}
