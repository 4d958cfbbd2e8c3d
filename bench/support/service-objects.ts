import { formatIp, parseCidr } from "../../lib/net/cidr.ts";

// The Services of bench:services and their EndpointSlices, written by the
// bench itself (no selector, so no controller makes or touches the slices):
// a change is then one write the bench times from its own request, not a
// controller's batching, and 10,000 Services need no 30,000 Pod objects.
// Deterministic, so runs compare.

export const BENCH_NAMESPACE = "svcbench";
export const SERVICE_PORT = 80;
export const TARGET_PORT = 8080;
/** Our slices say who manages them, so kube-controller-manager's mirroring controller leaves them alone. */
export const MANAGED_BY = "bench-services.twill.dev";
/** Where the 3 endpoints of Service i come from: never a real pod's address (their rules are only counted). */
export const FAKE_ENDPOINTS = "10.244.128.0/17";
/** Where each endpoint change's new address comes from: an address no rule held before, so the kernel event is unmistakable. */
export const CHANGED_ENDPOINTS = "10.247.0.0/16";

export const serviceName = (i: number) => `svc-${String(i).padStart(5, "0")}`;
export const sliceName = (service: string) => `${service}-bench`;

export function benchService(name: string): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: BENCH_NAMESPACE },
    spec: { type: "ClusterIP", ports: [{ protocol: "TCP", port: SERVICE_PORT, targetPort: TARGET_PORT }] },
  };
}

/** The slice of `service` with these endpoint addresses, all ready, on port TARGET_PORT (unnamed, as the Service's port). */
export function benchSlice(service: string, addresses: readonly string[]): Record<string, unknown> {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: sliceName(service), namespace: BENCH_NAMESPACE, labels: { "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": MANAGED_BY } },
    addressType: "IPv4",
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false } })),
    ports: [{ name: "", protocol: "TCP", port: TARGET_PORT }],
  };
}

/** Service i's 3 endpoints: consecutive addresses of FAKE_ENDPOINTS (room for 10,922 Services). */
export function fakeEndpoints(i: number): string[] {
  const base = parseCidr(FAKE_ENDPOINTS).network;
  const room = 2n ** BigInt(32 - parseCidr(FAKE_ENDPOINTS).prefix) / 3n;
  if (i < 0 || BigInt(i) >= room) throw new RangeError(`service index ${i} outside 0..${room - 1n}`);
  return [0, 1, 2].map((k) => formatIp(4, base + BigInt(3 * i + k + 1)));
}

/** The n-th change's new endpoint address (n from 0; 65,534 of them). */
export function changedEndpoint(n: number): string {
  if (n < 0 || n >= 65_534) throw new RangeError(`change ${n} outside 0..65533`);
  return formatIp(4, parseCidr(CHANGED_ENDPOINTS).network + BigInt(n + 1));
}
