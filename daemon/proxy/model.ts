import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { parseIp } from "../../lib/net/cidr.ts";

// What one Service asks of this node's proxy, parsed once from the Service
// and its EndpointSlices into plain per-port plans. Pure. A Service that is
// not well formed becomes an Invalid with a code and a sentence and never
// takes the others down with it.

export type Protocol = "tcp" | "udp" | "sctp";

/** One endpoint of a Service port, as its slices describe it (deduplicated by address). */
export interface Endpoint {
  ip: string;
  port: number;
  node?: string;
  /** Ready: nil counts as true (EndpointSlice API: "unknown state … interpreted as ready"). */
  ready: boolean;
  /** Serving: nil counts as `ready`. */
  serving: boolean;
  terminating: boolean;
  /** hints.forZones, when the slice controller set them (trafficDistribution PreferClose/PreferSameZone). */
  zones?: string[];
  /** hints.forNodes (trafficDistribution PreferSameNode). */
  nodes?: string[];
}

export interface ServicePort {
  /** namespace/name/protocol/port-name-or-number: unique per Service port; names the chains. */
  id: string;
  namespace: string;
  service: string;
  portName: string;
  protocol: Protocol;
  /** The Service's IPv4 ClusterIPs (IPv6 is not proxied yet: docs/services.md). */
  clusterIPs: string[];
  port: number;
  nodePort?: number;
  /** externalIPs and status.loadBalancer.ingress addresses: "external" traffic, like NodePorts. */
  externalIPs: string[];
  externalLocal: boolean;
  internalLocal: boolean;
  /** sessionAffinity ClientIP: seconds a client stays with its endpoint. */
  affinitySeconds?: number;
  /** The Service's healthCheckNodePort (ETP Local NodePort/LoadBalancer). */
  healthCheckNodePort?: number;
  endpoints: Endpoint[];
}

export interface Invalid {
  key: string;
  code: string;
  reason: string;
}

export interface ServicePlan {
  key: string;
  ports: ServicePort[];
}

/** kube-proxy honours this label: a Service carrying it belongs to another proxy. */
export const SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name";
export const SLICE_SERVICE_NAME = "kubernetes.io/service-name";

const PROTOCOLS: Record<string, Protocol> = { TCP: "tcp", UDP: "udp", SCTP: "sctp" };
/** ClientIP affinity's default (Kubernetes API). */
const DEFAULT_AFFINITY_SECONDS = 10800;

const isIpv4 = (s: string) => /^\d+\.\d+\.\d+\.\d+$/.test(s) && (() => {
  try {
    return parseIp(s).family === 4;
  } catch {
    return false;
  }
})();

export const serviceKey = (namespace: string, name: string) => `${namespace}/${name}`;

/** Endpoints of one Service port: every slice's endpoints that carry a port of that name and protocol. */
function portEndpoints(slices: V1EndpointSlice[], portName: string, protocol: Protocol): Endpoint[] {
  const out = new Map<string, Endpoint>();
  for (const s of slices) {
    if (s.addressType !== "IPv4") continue;
    const sp = (s.ports ?? []).find((p) => (p.name ?? "") === portName && PROTOCOLS[p.protocol ?? "TCP"] === protocol);
    if (!sp || typeof sp.port !== "number" || sp.port < 1 || sp.port > 65535) continue;
    for (const e of s.endpoints ?? []) {
      const ip = e.addresses?.[0];
      if (!ip || !isIpv4(ip)) continue;
      const c = e.conditions ?? {};
      const ready = c.ready !== false;
      const ep: Endpoint = {
        ip,
        port: sp.port,
        ...(e.nodeName ? { node: e.nodeName } : {}),
        ready,
        serving: c.serving ?? ready,
        terminating: c.terminating === true,
        ...(e.hints?.forZones ? { zones: e.hints.forZones.map((z) => z.name) } : {}),
        ...((e.hints as { forNodes?: { name: string }[] } | undefined)?.forNodes ? { nodes: (e.hints as { forNodes: { name: string }[] }).forNodes.map((n) => n.name) } : {}),
      };
      const k = `${ip}:${sp.port}`;
      const have = out.get(k);
      // The same address in two slices (a slice being replaced): the readier copy wins.
      if (!have || (!have.ready && ep.ready)) out.set(k, ep);
    }
  }
  return [...out.values()].sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
}

/**
 * The plan for one Service, or why it is left out. `undefined`: nothing for a
 * proxy to do (headless, ExternalName, another proxy's, no IPv4 ClusterIP).
 */
export function planService(svc: V1Service, slices: V1EndpointSlice[]): ServicePlan | Invalid | undefined {
  const namespace = svc.metadata?.namespace ?? "";
  const name = svc.metadata?.name ?? "";
  const key = serviceKey(namespace, name);
  const spec = svc.spec ?? {};
  if (svc.metadata?.labels?.[SERVICE_PROXY_NAME]) return undefined;
  if (spec.type === "ExternalName") return undefined;
  const clusterIPs = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((ip) => ip !== "None" && ip !== "");
  if (clusterIPs.length === 0) return undefined;
  const v4 = clusterIPs.filter(isIpv4);
  if (v4.length === 0) {
    if (clusterIPs.some((ip) => !ip.includes(":"))) return { key, code: "SERVICE_INVALID", reason: `clusterIP ${clusterIPs.join(",")} is not an IP address` };
    return undefined;
  }
  const bad = (reason: string): Invalid => ({ key, code: "SERVICE_INVALID", reason });
  const externalIPs = [...(spec.externalIPs ?? []), ...(svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter(Boolean)];
  for (const ip of externalIPs) if (!ip.includes(":") && !isIpv4(ip)) return bad(`external address ${ip} is not an IP address`);
  const externalLocal = spec.externalTrafficPolicy === "Local" && (spec.type === "NodePort" || spec.type === "LoadBalancer" || externalIPs.length > 0);
  const internalLocal = spec.internalTrafficPolicy === "Local";
  let affinitySeconds: number | undefined;
  if (spec.sessionAffinity === "ClientIP") {
    affinitySeconds = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS;
    if (!Number.isInteger(affinitySeconds) || affinitySeconds < 1 || affinitySeconds > 86400) return bad(`sessionAffinityConfig.clientIP.timeoutSeconds ${affinitySeconds} is not 1..86400`);
  }
  const hc = spec.healthCheckNodePort;
  const ports: ServicePort[] = [];
  const seen = new Set<string>();
  for (const p of spec.ports ?? []) {
    const protocol = PROTOCOLS[p.protocol ?? "TCP"];
    if (!protocol) return bad(`port ${p.name ?? p.port}: protocol ${p.protocol} is not TCP, UDP or SCTP`);
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return bad(`port ${p.name ?? ""} ${p.port} is not 1..65535`);
    if (p.nodePort !== undefined && (!Number.isInteger(p.nodePort) || p.nodePort < 1 || p.nodePort > 65535)) return bad(`nodePort ${p.nodePort} is not 1..65535`);
    const portName = p.name ?? "";
    const id = `${namespace}/${name}/${protocol}/${portName || p.port}`;
    if (seen.has(id)) return bad(`port ${portName || p.port}/${protocol} appears twice`);
    seen.add(id);
    ports.push({
      id,
      namespace,
      service: name,
      portName,
      protocol,
      clusterIPs: v4,
      port: p.port,
      ...(p.nodePort && spec.type !== "ClusterIP" ? { nodePort: p.nodePort } : {}),
      externalIPs: externalIPs.filter(isIpv4),
      externalLocal,
      internalLocal,
      ...(affinitySeconds ? { affinitySeconds } : {}),
      ...(hc && externalLocal ? { healthCheckNodePort: hc } : {}),
      endpoints: portEndpoints(slices, portName, protocol),
    });
  }
  return { key, ports };
}

export const isInvalid = (p: ServicePlan | Invalid | undefined): p is Invalid => !!p && "code" in p;
