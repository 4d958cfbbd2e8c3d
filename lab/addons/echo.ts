import type { KubernetesObject, V1Container } from "@kubernetes/client-node";
import { ECHO_WWW, POD_IMAGE } from "../kubelet/images.ts";

// The lab's Services and what serves them: a Deployment `echo` of busybox
// httpd pods whose one page says which pod answered and from which address
// the connection came (lab/kubelet/images.ts), behind
//   echo           ClusterIP, reached by its DNS name from inside every lab pod;
//   echo-nodeport  NodePort, externalTrafficPolicy Cluster (any node forwards, the client is masqueraded);
//   echo-local     NodePort, externalTrafficPolicy Local (only nodes with an echo pod answer, the client's
//                  address is kept).
// One node fewer than the lab has runs an echo pod (at least one), so Local's "which nodes answer" has both
// answers, and a pod on an echo-less node reaches its endpoint on another node.

export const ECHO_NAMESPACE = "default";
export const ECHO_PORT = 80;
export const ECHO_TARGET_PORT = 8080;
export const ECHO_NODEPORT_CLUSTER = 30080;
export const ECHO_NODEPORT_LOCAL = 30081;
export const ECHO_LABELS = { app: "echo" };

/** The echo server: busybox httpd serving the page that names the pod and the client it saw. */
export function echoContainer(): V1Container {
  return {
    name: "httpd",
    image: POD_IMAGE,
    imagePullPolicy: "Never",
    command: ["httpd", "-f", "-p", String(ECHO_TARGET_PORT), "-h", ECHO_WWW],
    ports: [{ name: "http", containerPort: ECHO_TARGET_PORT, protocol: "TCP" }],
  };
}

export const echoReplicas = (nodes: number) => Math.max(1, nodes - 1);

export function echoObjects(nodes: number): KubernetesObject[] {
  const service = (name: string, spec: Record<string, unknown>): KubernetesObject =>
    ({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: ECHO_NAMESPACE }, spec: { selector: ECHO_LABELS, ...spec } }) as KubernetesObject;
  const httpPort = (nodePort?: number) => [{ name: "http", protocol: "TCP", port: ECHO_PORT, targetPort: ECHO_TARGET_PORT, ...(nodePort ? { nodePort } : {}) }];
  return [
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "echo", namespace: ECHO_NAMESPACE, labels: ECHO_LABELS },
      spec: {
        replicas: echoReplicas(nodes),
        selector: { matchLabels: ECHO_LABELS },
        template: {
          metadata: { labels: ECHO_LABELS },
          spec: {
            // At most one echo pod per node, so the Local column means "this node has an endpoint".
            topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "kubernetes.io/hostname", whenUnsatisfiable: "DoNotSchedule", labelSelector: { matchLabels: ECHO_LABELS } }],
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 1,
            containers: [
              { ...echoContainer(), readinessProbe: { tcpSocket: { port: ECHO_TARGET_PORT }, periodSeconds: 1 } },
            ],
          },
        },
      },
    } as KubernetesObject,
    service("echo", { type: "ClusterIP", ports: httpPort() }),
    service("echo-nodeport", { type: "NodePort", externalTrafficPolicy: "Cluster", ports: httpPort(ECHO_NODEPORT_CLUSTER) }),
    service("echo-local", { type: "NodePort", externalTrafficPolicy: "Local", ports: httpPort(ECHO_NODEPORT_LOCAL) }),
  ];
}
