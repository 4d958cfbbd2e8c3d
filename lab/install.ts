import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { CoreV1Api, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { TwillError } from "../lib/errors.ts";
import { rawRequest, type Credentials } from "./kube.ts";

// The lab installs Twill as an operator would, from manifests/twill.yaml —
// everything but the DaemonSet (no kubelet runs the pods yet): the daemons
// then run as processes in the node namespaces, authenticated with a token of
// the manifest's ServiceAccount, so they have exactly the manifest's RBAC.
//
// Objects go to the apiserver as server-side apply of the manifest's own
// JSON: the typed client's serializer drops schema fields it does not model
// under their JSON names (CRD `default`s were lost that way, seen here).

const MANIFEST = resolve(import.meta.dirname, "../manifests/twill.yaml");

export function manifestObjects(path = MANIFEST): KubernetesObject[] {
  return parseAllDocuments(readFileSync(path, "utf8")).map((d) => d.toJS() as KubernetesObject);
}

// The kinds the manifest and the lab's add-ons hold, and where each lives in the API.
const RESOURCES: Record<string, { base: string; plural: string; namespaced: boolean }> = {
  Namespace: { base: "/api/v1", plural: "namespaces", namespaced: false },
  ServiceAccount: { base: "/api/v1", plural: "serviceaccounts", namespaced: true },
  ConfigMap: { base: "/api/v1", plural: "configmaps", namespaced: true },
  CustomResourceDefinition: { base: "/apis/apiextensions.k8s.io/v1", plural: "customresourcedefinitions", namespaced: false },
  ClusterRole: { base: "/apis/rbac.authorization.k8s.io/v1", plural: "clusterroles", namespaced: false },
  ClusterRoleBinding: { base: "/apis/rbac.authorization.k8s.io/v1", plural: "clusterrolebindings", namespaced: false },
  Role: { base: "/apis/rbac.authorization.k8s.io/v1", plural: "roles", namespaced: true },
  RoleBinding: { base: "/apis/rbac.authorization.k8s.io/v1", plural: "rolebindings", namespaced: true },
  DaemonSet: { base: "/apis/apps/v1", plural: "daemonsets", namespaced: true },
  // The add-ons' kinds (lab/addons).
  Deployment: { base: "/apis/apps/v1", plural: "deployments", namespaced: true },
  Service: { base: "/api/v1", plural: "services", namespaced: true },
};

export function objectPath(obj: KubernetesObject): string {
  const r = RESOURCES[obj.kind ?? ""];
  if (!r) throw new TwillError("MANIFEST_KIND", `the lab does not know where ${obj.kind} objects live`);
  const ns = r.namespaced ? `/namespaces/${obj.metadata?.namespace ?? "default"}` : "";
  return `${r.base}${ns}/${r.plural}/${obj.metadata?.name}`;
}

/** Server-side apply of one object; `dryRun` validates without storing. */
export async function applyObject(port: number, creds: Credentials, obj: KubernetesObject, dryRun = false): Promise<void> {
  const query = `?fieldManager=twill-lab&force=true${dryRun ? "&dryRun=All" : ""}`;
  const r = await rawRequest(port, creds, "PATCH", objectPath(obj) + query, obj, "application/apply-patch+yaml");
  if (r.status >= 300) throw new TwillError("MANIFEST_APPLY", `applying ${obj.kind} ${obj.metadata?.name} failed (${r.status})`, r.body.slice(0, 500));
}

export async function applyManifests(port: number, creds: Credentials, skipKinds = ["DaemonSet"]): Promise<void> {
  for (const obj of manifestObjects()) {
    if (!skipKinds.includes(obj.kind ?? "")) await applyObject(port, creds, obj);
  }
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
