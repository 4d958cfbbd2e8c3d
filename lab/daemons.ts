import { underlayKubeconfig } from "./kube.ts";
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { TwillError } from "../lib/errors.ts";
import type { LabNode } from "./cluster.ts";
import { CLUSTER_CIDR } from "./names.ts";
import { startIn, tail, type LabProcess } from "./process.ts";

// Twill's node daemon, one per lab node, running inside the node's namespace
// as the DaemonSet's container would, reaching the apiserver over the underlay.

const REPO = resolve(import.meta.dirname, "..");

/**
 * V8 flags the daemon runs with (also in manifests/twill.yaml and the
 * Containerfile). A small young generation keeps RSS down (the default cost
 * 212 vs 148 MiB at 1,000 nodes), but 1 MiB was too small: a policy change's
 * short-lived garbage (~0.8 MB) got promoted, and the old-generation
 * collections that followed were the policy-flip latency tail (in-process at
 * 10,000 pods: compile p99 55 ms with 1 MiB, 13 ms with 4 MiB). Capping the
 * old generation at 128 MiB makes V8 collect the garbage of large reconciles
 * instead of growing (5,000 nodes: 323 → 179 MiB), which is safe because the
 * caches are slim and lists are paged (bench:convergence, bench:policy).
 */
export const DAEMON_NODE_FLAGS = ["--max-semi-space-size=4", "--max-old-space-size=128"];

export interface DaemonOptions {
  backend: string;
  clusterCIDR?: string;
  directRouting?: boolean;
  masquerade?: boolean;
  policy?: boolean;
  /** `encryption: wireguard` (wireguard-go: this kernel has no WireGuard module). */
  encryption?: "wireguard";
  /** Twill proxies Services (no kube-proxy in the lab). */
  serviceProxy?: boolean;
}

export function daemonConfig(opts: DaemonOptions): string {
  return `clusterCIDR: ${opts.clusterCIDR ?? CLUSTER_CIDR}
backend: ${opts.backend}
mtu: 0
masquerade: ${opts.masquerade ?? true}
policy: ${opts.policy ?? true}
serviceProxy: ${opts.serviceProxy ?? false}
vxlan:
  vni: 1
  port: 8472
  directRouting: ${opts.directRouting ? "true" : "false"}
${opts.encryption ? "encryption: wireguard\nwireguard:\n  port: 51820\n  userspace: true\n" : ""}`;
}

export function writeDaemonFiles(labDir: string, ca: string, token: string, opts: DaemonOptions): { config: string; kubeconfig: string } {
  const config = join(labDir, "twill-config.yaml");
  writeFileSync(config, daemonConfig(opts));
  const kubeconfig = join(labDir, "twill-daemon.kubeconfig");
  writeFileSync(kubeconfig, underlayKubeconfig(ca, "twill", `{token: "${token}"}`), { mode: 0o600 });
  return { config, kubeconfig };
}

/** `resyncSeconds`: the lab's 5 s heals faster than the daemon's own default (10 s, what the manifest runs). */
export function startDaemon(node: LabNode, files: { config: string; kubeconfig: string }, resyncSeconds = 5): LabProcess {
  return startIn(node.ns, `twill-daemon on ${node.name}`, [
    process.execPath,
    ...DAEMON_NODE_FLAGS,
    join(REPO, "daemon/main.ts"),
    "--config", files.config,
    "--kubeconfig", files.kubeconfig,
    "--node-name", node.name,
    "--node-file", node.nodeFile,
    "--resync-seconds", String(resyncSeconds),
    "--ipam-dir", node.ipamDir,
    // The repo's build (npm test builds it), as the image has /opt/twill/bin/twill.
    "--twill-binary", join(REPO, "dist/cni/twill"),
    // On every address of the node: twillctl's cluster-wide views reach the read-only API there (docs/twillctl.md).
    "--health-address", "0.0.0.0",
    // encryption: the node's key, and wireguard-go's /run of its own (nodes share this machine's filesystem).
    "--wireguard-key-file", join(node.dir, "wireguard", "private.key"),
    "--wireguard-run-dir", join(node.dir, "run"),
    // Metrics alone, as the manifest serves them to Prometheus (test/observe scrapes this port).
    "--metrics-port", "9098",
  ], join(node.dir, "daemon.log"));
}

/** The daemon writes the node file once the dataplane is programmed: that is readiness. */
export async function waitDaemonReady(node: LabNode, proc: LabProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(node.nodeFile)) return;
    if (proc.exited()) throw new TwillError("LAB_DAEMON", `the daemon on ${node.name} exited`, tail(proc.log));
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new TwillError("LAB_DAEMON", `the daemon on ${node.name} did not program its node within ${timeoutMs / 1000} s`, tail(proc.log));
}
