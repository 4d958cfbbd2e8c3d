import { existsSync } from "node:fs";
import { AppsV1Api, CoreV1Api, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { TwillError } from "../../lib/errors.ts";
import type { LabNode } from "../cluster.ts";
import { applyObject, manifestObjects } from "../install.ts";
import type { Credentials } from "../kube.ts";
import { CONTROL_PLANE_IP } from "../names.ts";
import { tail } from "../process.ts";

// Twill installed as an operator would, DaemonSet included: manifests/twill.yaml
// applied whole, with the values an operator sets per cluster: the backend,
// and the apiserver's address for the daemon (KUBERNETES_SERVICE_HOST/PORT, as
// CNIs are configured: the `kubernetes` Service's ClusterIP leads anywhere only
// through kube-proxy's rules, and the pod network must come up without them —
// in kubelet labs without the add-ons no kube-proxy runs at all).

type Obj = KubernetesObject & { data?: Record<string, string>; spec?: { template?: { spec?: { containers?: { name: string; env?: { name: string; value?: string }[] }[] } } } };

export function labManifest(backend: string): KubernetesObject[] {
  return manifestObjects().map((o) => {
    const obj = structuredClone(o) as Obj;
    if (obj.kind === "ConfigMap" && obj.metadata?.name === "twill-config" && obj.data) {
      obj.data["config.yaml"] = (obj.data["config.yaml"] ?? "").replace(/^backend:.*$/m, `backend: ${backend}`);
    }
    if (obj.kind === "DaemonSet") {
      for (const c of obj.spec?.template?.spec?.containers ?? []) {
        if (c.name !== "twill") continue;
        c.env = [...(c.env ?? []), { name: "KUBERNETES_SERVICE_HOST", value: CONTROL_PLANE_IP }, { name: "KUBERNETES_SERVICE_PORT", value: "6443" }];
      }
    }
    return obj;
  });
}

export async function applyDaemonSet(port: number, creds: Credentials, backend: string): Promise<void> {
  for (const obj of labManifest(backend)) await applyObject(port, creds, obj);
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
