import type { Endpoint, ServicePort } from "./model.ts";

// Which endpoints this node sends a Service port's traffic to, by upstream's
// rules (the ones kube-proxy applies):
// - ready endpoints; only when none is ready, the ones still serving while
//   they terminate (a rolling update's last pods keep answering);
// - traffic policy Local: only this node's endpoints (same fallback);
// - topology hints (trafficDistribution, set by the EndpointSlice
//   controller): when every ready endpoint carries hints and some hint names
//   this node (forNodes) or its zone (forZones), only those; else all.
//   Hints never apply to Local policy.
// Pure.

export interface ThisNode {
  name: string;
  /** topology.kubernetes.io/zone of this Node. */
  zone?: string;
}

export interface Chosen {
  /** Endpoints for cluster-wide policy (ClusterIP with ITP Cluster, external with ETP Cluster). */
  cluster: Endpoint[];
  /** This node's endpoints (ITP or ETP Local). */
  local: Endpoint[];
  /** False when no endpoint at all can be reached from here: connections are rejected. */
  reachable: boolean;
  usesCluster: boolean;
  usesLocal: boolean;
}

function byHints(ready: Endpoint[], node: ThisNode): Endpoint[] {
  if (ready.length === 0) return ready;
  if (ready.every((e) => e.nodes?.length)) {
    const mine = ready.filter((e) => e.nodes!.includes(node.name));
    if (mine.length) return mine;
  }
  if (node.zone && ready.every((e) => e.zones?.length)) {
    const zone = ready.filter((e) => e.zones!.includes(node.zone!));
    if (zone.length) return zone;
  }
  return ready;
}

function usable(eps: Endpoint[], filter?: (e: Endpoint[]) => Endpoint[]): Endpoint[] {
  const ready = eps.filter((e) => e.ready);
  if (ready.length) return filter ? filter(ready) : ready;
  return eps.filter((e) => e.serving && e.terminating);
}

export function chooseEndpoints(p: ServicePort, node: ThisNode): Chosen {
  const external = p.nodePort !== undefined || p.externalIPs.length > 0;
  const usesCluster = !p.internalLocal || (external && !p.externalLocal);
  const usesLocal = p.internalLocal || (external && p.externalLocal);
  const cluster = usesCluster ? usable(p.endpoints, (r) => byHints(r, node)) : [];
  const local = usesLocal ? usable(p.endpoints.filter((e) => e.node === node.name)) : [];
  return { cluster, local, reachable: cluster.length + local.length > 0, usesCluster, usesLocal };
}
