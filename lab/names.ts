import { join } from "node:path";

// Every lab has a short unique name; every namespace, file and process of it
// is named from it, so several labs run side by side and a stale one is found
// by name alone.

export const LAB_ROOT = "/run/twill-lab";
export const LAB_PREFIX = "twlab";

export function newLabName(): string {
  return `${LAB_PREFIX}${Math.random().toString(36).slice(2, 6)}`;
}

export const labDir = (lab: string) => join(LAB_ROOT, lab);
export const underlayNs = (lab: string) => `${lab}-ul`;
export const controlPlaneNs = (lab: string) => `${lab}-cp`;
/** The router on the underlay: every node's default gateway, and "outside the cluster" for NodePort probes. */
export const routerNs = (lab: string) => `${lab}-rt`;
export const nodeName = (i: number) => `node${i}`;
export const nodeNs = (lab: string, node: string) => `${lab}-${node}`;
export const podNs = (lab: string, pod: string) => `${lab}-${pod}`;
export const nodeDir = (lab: string, node: string) => join(labDir(lab), "nodes", node);

/** The underlay: one /24 inside the lab's namespaces only. */
export const UNDERLAY_PREFIX = "172.30.0";
export const ROUTER_IP = `${UNDERLAY_PREFIX}.1`;
export const CONTROL_PLANE_IP = `${UNDERLAY_PREFIX}.2`;
export const nodeIp = (i: number) => `${UNDERLAY_PREFIX}.${10 + i}`;
export const CLUSTER_CIDR = "10.244.0.0/16";
export const SERVICE_CIDR = "10.96.0.0/16";
/** The `kubernetes` Service's ClusterIP (the service CIDR's first address) and kube-dns's (its tenth), as kubeadm places them. */
export const KUBERNETES_SERVICE_IP = "10.96.0.1";
export const DNS_SERVICE_IP = "10.96.0.10";
export const CLUSTER_DOMAIN = "cluster.local";
