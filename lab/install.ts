import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { CoreV1Api, KubernetesObjectApi, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

// The lab installs Twill as an operator would, from manifests/twill.yaml —
// everything but the DaemonSet (no kubelet runs the pods yet): the daemons
// then run as processes in the node namespaces, authenticated with a token of
// the manifest's ServiceAccount, so they have exactly the manifest's RBAC.

const MANIFEST = resolve(import.meta.dirname, "../manifests/twill.yaml");

export function manifestObjects(path = MANIFEST): KubernetesObject[] {
  return parseAllDocuments(readFileSync(path, "utf8")).map((d) => d.toJS() as KubernetesObject);
}

export async function applyManifests(kc: KubeConfig, skipKinds = ["DaemonSet"]): Promise<KubernetesObject[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const applied: KubernetesObject[] = [];
  for (const obj of manifestObjects()) {
    if (skipKinds.includes(obj.kind ?? "")) continue;
    try {
      await api.create(obj);
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    applied.push(obj);
  }
  return applied;
}

/** A token of the twill ServiceAccount (TokenRequest API), as the DaemonSet's pods would get. */
export async function serviceAccountToken(kc: KubeConfig, hours = 24): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const r = await core.createNamespacedServiceAccountToken({
    name: "twill",
    namespace: "twill-system",
    body: { spec: { audiences: [], expirationSeconds: hours * 3600 } },
  });
  return r.status?.token ?? "";
}
