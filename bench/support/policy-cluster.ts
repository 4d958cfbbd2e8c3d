import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { formatIp, parseCidr } from "../../lib/net/cidr.ts";

// A synthetic cluster for the NetworkPolicy benchmark: namespaces, pods with
// varied labels and named ports, and policies of every peer shape (pod
// selector, namespace selector, both, ipBlock with except, set expressions,
// port ranges, named ports, egress). Deterministic, so runs compare.

export interface SyntheticOptions {
  pods: number;
  policies: number;
  namespaces: number;
  /** The benchmark node: the first `localPods` pods live there, addresses from its pod CIDR (skipping `skipLocal` addresses). */
  localNode: string;
  localCidr: string;
  localPods: number;
  skipLocal: number;
  /** Where the other pods' addresses come from (outside every real node's pod CIDR). */
  remoteCidr: string;
}

const ROLES = ["frontend", "backend", "db", "cache"];
export const APPS = 25;

export const nsName = (i: number) => `bench-${String(i).padStart(2, "0")}`;

export function syntheticNamespaces(o: SyntheticOptions): V1Namespace[] {
  return Array.from({ length: o.namespaces }, (_, i) => ({ metadata: { name: nsName(i), labels: { team: `t${i % 5}`, tier: i % 2 ? "b" : "a" } } }));
}

export function syntheticPods(o: SyntheticOptions): V1Pod[] {
  const local = parseCidr(o.localCidr);
  const remote = parseCidr(o.remoteCidr);
  return Array.from({ length: o.pods }, (_, i) => {
    const isLocal = i < o.localPods;
    const ip = isLocal ? formatIp(4, local.network + BigInt(o.skipLocal + i + 1)) : formatIp(4, remote.network + BigInt(i - o.localPods + 1));
    return {
      metadata: { name: `p${i}`, namespace: nsName(i % o.namespaces), labels: { app: `app-${Math.floor(i / o.namespaces) % APPS}`, role: ROLES[i % 4]!, version: `v${i % 3}` } },
      spec: {
        nodeName: isLocal ? o.localNode : `fake-${Math.floor(i / 100)}`,
        automountServiceAccountToken: false,
        containers: [{ name: "app", image: "twill-lab/none", ports: [{ name: "http", containerPort: 8080 + (i % 3) }, { name: "metrics", containerPort: 9090 }] }],
      },
      status: { podIP: ip, podIPs: [{ ip }], phase: "Running" },
    };
  });
}

/** Policy `k` in namespace k % namespaces, selecting one app there; its shape cycles through five kinds. */
export function syntheticPolicy(o: SyntheticOptions, k: number): V1NetworkPolicy {
  const ns = nsName(k % o.namespaces);
  const app = `app-${Math.floor(k / o.namespaces) % APPS}`;
  const meta = { name: `np${k}`, namespace: ns };
  const podSelector = { matchLabels: { app } };
  switch (k % 5) {
    case 0:
      return { metadata: meta, spec: { podSelector, ingress: [{ from: [{ podSelector: { matchLabels: { role: "frontend" } } }], ports: [{ protocol: "TCP", port: 8080 }] }] } as never };
    case 1:
      return { metadata: meta, spec: { podSelector, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t${k % 5}` } }, podSelector: { matchLabels: { role: "backend" } } }], ports: [{ port: "http" }] }] } as never };
    case 2:
      return { metadata: meta, spec: { podSelector, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.244.0.0/16"] } }], ports: [{ protocol: "TCP", port: 443 }, { protocol: "UDP", port: 53 }] }] } as never };
    case 3:
      return { metadata: meta, spec: { podSelector, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchExpressions: [{ key: "version", operator: "In", values: ["v1"] }] } }], ports: [{ protocol: "TCP", port: 9000, endPort: 9100 }] }] } as never };
    default:
      return {
        metadata: meta,
        spec: {
          podSelector,
          policyTypes: ["Ingress", "Egress"],
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: "a" } } }], ports: [{ port: "metrics" }] }],
          egress: [{ to: [{ podSelector: { matchLabels: { role: "db" } } }], ports: [{ protocol: "TCP", port: 5432 }] }, { ports: [{ protocol: "UDP", port: 53 }] }],
        },
      } as never;
  }
}

export function syntheticPolicies(o: SyntheticOptions): V1NetworkPolicy[] {
  return Array.from({ length: o.policies }, (_, k) => syntheticPolicy(o, k));
}
