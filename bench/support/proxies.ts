import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { startKubeProxy, writeKubeProxyFiles } from "../../lab/addons/kube-proxy.ts";
import type { LabNode } from "../../lab/cluster.ts";
import { daemonConfig, startDaemon } from "../../lab/daemons.ts";
import { applyManifests, serviceAccountToken } from "../../lab/install.ts";
import { underlayKubeconfig, type Credentials } from "../../lab/kube.ts";
import type { Pki } from "../../lab/pki.ts";
import type { LabProcess } from "../../lab/process.ts";
import { REPO } from "./report.ts";

// The proxies bench:services compares. Each one is started on a fresh node
// namespace and judged only from outside: its kernel state (nft), its
// process (RSS) and packets. Adding a proxy is adding an entry here.

export interface BenchContext {
  /** The Kubernetes binaries (kube-proxy among them). */
  bin: string;
  pki: Pki;
  clusterCIDR: string;
  kc: KubeConfig;
  apiPort: number;
  admin: Credentials;
}

export interface ProxyUnderTest {
  /** Its row and figure name ("kube-proxy nftables tuned"). */
  id: string;
  /** The kernel interface its rules use. */
  mode: "nftables" | "iptables";
  /** Why it is not in this run, when it cannot be (the row stays in the report, empty). */
  unavailable?: string;
  /** Starts it in `node`'s namespace; `dir` is this run's own directory. */
  start(ctx: BenchContext, node: LabNode, dir: string): Promise<LabProcess>;
}

/** kube-proxy at its defaults (minSyncPeriod 1 s) or tuned to its fastest (minSyncPeriod 0). */
export function kubeProxy(mode: "nftables" | "iptables", tuned: boolean): ProxyUnderTest {
  return {
    id: `kube-proxy ${mode} ${tuned ? "tuned" : "default"}`,
    mode,
    start: async (ctx, node, dir) => {
      const n = { name: node.name, ip: node.ip, dir };
      const files = await writeKubeProxyFiles(ctx.pki, n, mode, ctx.clusterCIDR, tuned ? "0s" : undefined);
      return startKubeProxy(ctx.bin, node.ns, undefined, n, files);
    },
  };
}

/**
 * Twill's node daemon with `serviceProxy: true` and nothing else it could do on this node (masquerade and
 * NetworkPolicy off), so what is measured is its service proxy; its RSS is the whole daemon's.
 */
export function twillProxy(): ProxyUnderTest {
  const missing = existsSync(join(REPO, "daemon/proxy")) ? undefined : "Twill's service proxy (daemon/proxy) is not in this tree";
  let token: string | undefined;
  return {
    id: "Twill",
    mode: "nftables",
    ...(missing ? { unavailable: missing } : {}),
    start: async (ctx, node, dir) => {
      if (!token) {
        await applyManifests(ctx.apiPort, ctx.admin);
        token = await serviceAccountToken(ctx.kc);
      }
      mkdirSync(dir, { recursive: true });
      const config = join(dir, "config.yaml");
      writeFileSync(config, daemonConfig({ backend: "host-gw", clusterCIDR: ctx.clusterCIDR, masquerade: false, policy: false, serviceProxy: true }));
      const kubeconfig = join(dir, "kubeconfig");
      writeFileSync(kubeconfig, underlayKubeconfig(ctx.pki.ca, "twill", `{token: "${token}"}`), { mode: 0o600 });
      // At the daemon's default resync (10 s, as the manifest runs it), not the lab's 5 s.
      return startDaemon({ ...node, dir, nodeFile: join(dir, "node.json"), ipamDir: join(dir, "ipam") }, { config, kubeconfig }, 10);
    },
  };
}

export const ALL_PROXIES = (): ProxyUnderTest[] => [kubeProxy("nftables", true), kubeProxy("nftables", false), kubeProxy("iptables", true), kubeProxy("iptables", false), twillProxy()];

/** Every ratio is against this one (the goals are stated against it). */
export const REFERENCE = "kube-proxy nftables tuned";
