import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { TwillError } from "../../lib/errors.ts";
import { kubectlBinary } from "../binaries.ts";
import type { LabNode } from "../cluster.ts";
import { kubeConfig, type Credentials } from "../kube.ts";
import { installWithKustomize, type ConfigValue } from "../kustomize.ts";
import { CONTROL_PLANE_IP } from "../names.ts";
import { tail } from "../process.ts";
import { LAB_TWILL_IMAGE } from "./twill-image.ts";

// Twill installed as an operator installs it (docs/install.md): an overlay of
// manifests/ with the values an operator sets per cluster — the image (the
// lab's own build, under the lab's name: kubelet would try to pull the
// manifest's and fail, so a broken override shows), the backend and switches
// in config.yaml, and the apiserver's address for the daemon
// (KUBERNETES_SERVICE_HOST/PORT: the `kubernetes` Service's ClusterIP
// leads anywhere only through kube-proxy's rules, and the pod network must
// come up without them) — applied with kubectl's kustomize (lab/kustomize.ts).

export interface DaemonSetInstall {
  /** kubectl with kustomize built in; default the one built with the control plane. */
  kubectl?: string;
  /** Where the overlay (`twill-overlay/`) and its kubeconfig go; default a new temp directory. */
  dir?: string;
  /** Default the lab-built image's name. */
  image?: string;
  /** config.yaml keys over the manifest's (lab/kustomize.ts). */
  config?: Record<string, ConfigValue>;
}

export async function applyDaemonSet(port: number, creds: Credentials, backend: string, install: DaemonSetInstall = {}): Promise<void> {
  const dir = install.dir ?? mkdtempSync(join(tmpdir(), "twill-install-"));
  mkdirSync(dir, { recursive: true });
  const kubeconfig = join(dir, "twill-install.kubeconfig");
  writeFileSync(kubeconfig, kubeConfig(port, creds).exportConfig(), { mode: 0o600 });
  await installWithKustomize({
    kubectl: install.kubectl ?? (await kubectlBinary()),
    kubeconfig,
    dir: join(dir, "twill-overlay"),
    backend,
    image: install.image ?? LAB_TWILL_IMAGE,
    apiserver: { host: CONTROL_PLANE_IP, port: 6443 },
    ...(install.config ? { config: install.config } : {}),
  });
}

/** The daemon pod on every node has programmed its node (its node file exists) and the DaemonSet counts it Ready. */
export async function waitDaemonSetReady(kc: KubeConfig, nodes: LabNode[], timeoutMs = 180_000): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const deadline = Date.now() + timeoutMs;
  let pods: string[] = [];
  while (Date.now() < deadline) {
    if (nodes.every((n) => existsSync(n.nodeFile))) {
      const ds = await apps.readNamespacedDaemonSet({ name: "twill", namespace: "twill-system" });
      if (ds.status?.numberReady === nodes.length) return;
    }
    const list = await core.listNamespacedPod({ namespace: "twill-system" });
    pods = list.items.map((p) => `${p.metadata?.name} on ${p.spec?.nodeName ?? "(unscheduled)"}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((c) => c.state) ?? p.status?.initContainerStatuses?.map((c) => c.state) ?? [])}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const missing = nodes.filter((n) => !existsSync(n.nodeFile));
  throw new TwillError("LAB_DAEMONSET", `the twill DaemonSet did not program ${missing.map((n) => n.name).join(", ")} within ${timeoutMs / 1000} s`, [...pods, ...missing.map((n) => tail(n.kubelet!.kubeletLog, 10))].join("\n"));
}
