import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { TwillError } from "../../lib/errors.ts";
import { ociArchive, tar, type Entry } from "../kubelet/images.ts";
import { CLUSTER_DOMAIN, DNS_SERVICE_IP } from "../names.ts";

// CoreDNS as a cluster deploys it: a Deployment in kube-system behind the
// kube-dns Service at the address kubelet hands every pod as its nameserver.
// The objects carry the same facts as kubeadm's CoreDNS add-on (RBAC, probes,
// priority, tolerations, security context); the image is the CoreDNS binary the
// lab built from its release module, wrapped by the lab (no registry).
//
// CoreDNS reaches the apiserver the way any in-cluster client does: through the
// `kubernetes` Service's ClusterIP, which only kube-proxy's rules lead to the
// apiserver. Twill's own daemon never depends on that path (it is given the
// apiserver's address; lab/kubelet/daemonset.ts).

export const COREDNS_VERSION = "v1.15.0";
/** The name upstream publishes the image under, so the Deployment reads as a real cluster's. */
export const COREDNS_IMAGE = `registry.k8s.io/coredns/coredns:${COREDNS_VERSION}`;

/** An image with nothing but the static CoreDNS binary (upstream's is distroless, with the same entrypoint). */
export function writeCorednsImage(dir: string, bin: string): string {
  const entries: Entry[] = [
    ...["etc/", "tmp/"].map((name) => ({ name, type: "dir" as const, mode: name === "tmp/" ? 0o1777 : 0o755 })),
    { name: "coredns", type: "file", mode: 0o755, data: readFileSync(join(bin, "coredns")) },
  ];
  const path = join(dir, "coredns.oci.tar");
  writeFileSync(path, ociArchive({ name: COREDNS_IMAGE, entrypoint: ["/coredns"] }, tar(entries)));
  return path;
}

/**
 * The Corefile. No `forward`: the lab has no upstream resolver and no internet (the router namespace leads
 * nowhere), so CoreDNS answers the cluster's zones and nothing else; a name outside them gets SERVFAIL at once
 * instead of a forwarding timeout.
 */
export function corefile(domain = CLUSTER_DOMAIN): string {
  return `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ${domain} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    cache 30 {
        disable success ${domain}
        disable denial ${domain}
    }
    loop
    reload
    loadbalance
}
`;
}

const NS = "kube-system";
const LABELS = { "k8s-app": "kube-dns" };

export function corednsObjects(replicas = 2): KubernetesObject[] {
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "coredns", namespace: NS } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:coredns" },
      rules: [
        { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
      ],
    } as KubernetesObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:coredns" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: "coredns", namespace: NS }],
    } as KubernetesObject,
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "coredns", namespace: NS }, data: { Corefile: corefile() } } as KubernetesObject,
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "coredns", namespace: NS, labels: LABELS },
      spec: {
        replicas,
        strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
        selector: { matchLabels: LABELS },
        template: {
          metadata: { labels: LABELS },
          spec: {
            priorityClassName: "system-cluster-critical",
            serviceAccountName: "coredns",
            // One replica per node where possible, as kubeadm asks.
            affinity: {
              podAntiAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [
                  { weight: 100, podAffinityTerm: { labelSelector: { matchExpressions: [{ key: "k8s-app", operator: "In", values: ["kube-dns"] }] }, topologyKey: "kubernetes.io/hostname" } },
                ],
              },
            },
            tolerations: [
              { key: "CriticalAddonsOnly", operator: "Exists" },
              { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" },
            ],
            nodeSelector: { "kubernetes.io/os": "linux" },
            // Default: CoreDNS must not resolve through itself (kubelet's resolvConf is empty in the lab).
            dnsPolicy: "Default",
            containers: [
              {
                name: "coredns",
                image: COREDNS_IMAGE,
                imagePullPolicy: "IfNotPresent",
                args: ["-conf", "/etc/coredns/Corefile"],
                resources: { limits: { memory: "170Mi" }, requests: { cpu: "100m", memory: "70Mi" } },
                volumeMounts: [{ name: "config-volume", mountPath: "/etc/coredns", readOnly: true }],
                ports: [
                  { containerPort: 53, name: "dns", protocol: "UDP" },
                  { containerPort: 53, name: "dns-tcp", protocol: "TCP" },
                  { containerPort: 9153, name: "metrics", protocol: "TCP" },
                  { containerPort: 8080, name: "liveness-probe", protocol: "TCP" },
                  { containerPort: 8181, name: "readiness-probe", protocol: "TCP" },
                ],
                livenessProbe: { httpGet: { path: "/health", port: "liveness-probe", scheme: "HTTP" }, initialDelaySeconds: 60, timeoutSeconds: 5, successThreshold: 1, failureThreshold: 5 },
                // Ready once the kubernetes plugin has synced with the API (through the `kubernetes` ClusterIP);
                // probed every 2 s instead of the default 10 s, so the lab does not wait a period for nothing.
                readinessProbe: { httpGet: { path: "/ready", port: "readiness-probe", scheme: "HTTP" }, periodSeconds: 2 },
                securityContext: { allowPrivilegeEscalation: false, capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] }, readOnlyRootFilesystem: true },
              },
            ],
            volumes: [{ name: "config-volume", configMap: { name: "coredns", items: [{ key: "Corefile", path: "Corefile" }] } }],
          },
        },
      },
    } as KubernetesObject,
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: NS, labels: { ...LABELS, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS" }, annotations: { "prometheus.io/port": "9153", "prometheus.io/scrape": "true" } },
      spec: {
        clusterIP: DNS_SERVICE_IP,
        selector: LABELS,
        ports: [
          { name: "dns", port: 53, protocol: "UDP", targetPort: 53 },
          { name: "dns-tcp", port: 53, protocol: "TCP", targetPort: 53 },
          { name: "metrics", port: 9153, protocol: "TCP", targetPort: 9153 },
        ],
      },
    } as KubernetesObject,
  ];
}

/** Waits until a Deployment is Available with every replica ready; the error names its pods' states. */
export async function waitDeploymentAvailable(kc: KubeConfig, namespace: string, name: string, timeoutMs = 120_000): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const d = await apps.readNamespacedDeployment({ name, namespace });
      const available = d.status?.conditions?.some((c) => c.type === "Available" && c.status === "True");
      if (available && (d.status?.readyReplicas ?? 0) === (d.spec?.replicas ?? 1) && d.status?.observedGeneration === d.metadata?.generation) return;
      last = JSON.stringify(d.status?.conditions ?? []);
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const pods = (await core.listNamespacedPod({ namespace })).items
    .filter((p) => p.metadata?.name?.startsWith(name))
    .map((p) => `${p.metadata?.name} on ${p.spec?.nodeName ?? "(unscheduled)"}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((c) => c.state) ?? p.status?.conditions ?? [])}`);
  throw new TwillError("LAB_DEPLOYMENT", `Deployment ${namespace}/${name} was not Available within ${timeoutMs / 1000} s`, [last, ...pods].join("\n"));
}
