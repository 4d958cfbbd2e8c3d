import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { compilePort, describeProxy, nftDuration } from "../../daemon/proxy/compile.ts";
import { advertised, udpFlushes } from "../../daemon/proxy/controller.ts";
import { flushArgs } from "../../daemon/proxy/conntrack.ts";
import { isInvalid, planService, type ServicePlan, type ServicePort } from "../../daemon/proxy/model.ts";
import { chooseEndpoints } from "../../daemon/proxy/select.ts";
import { exportRoute, SERVICE_ROUTE_COMMUNITY } from "../../daemon/bgp/rib/export.ts";
import { LOCAL, type Route } from "../../daemon/bgp/rib/route.ts";
import { allocate, parsePool, TWILL_LB_CLASS, type LbPool } from "../../daemon/proxy/lb-pool.ts";

// The service proxy's pure parts: Service + slices → plans, which endpoints a
// node uses, what the table says, which UDP entries go. The kernel and the
// apiserver are exercised in services.test.ts.

const CIDR = "10.244.0.0/16";

function service(spec: V1Service["spec"], name = "web", labels?: Record<string, string>): V1Service {
  return { metadata: { name, namespace: "ns", ...(labels ? { labels } : {}) }, spec: { clusterIP: "10.96.0.5", ...spec } };
}

type Ep = { ip: string; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean; zones?: string[] };
function slice(eps: Ep[], ports = [{ name: "http", port: 8080, protocol: "TCP" }], name = "web-a"): V1EndpointSlice {
  return {
    metadata: { name, namespace: "ns", labels: { "kubernetes.io/service-name": "web" } },
    addressType: "IPv4",
    ports,
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      ...(e.node ? { nodeName: e.node } : {}),
      conditions: { ...(e.ready !== undefined ? { ready: e.ready } : {}), ...(e.serving !== undefined ? { serving: e.serving } : {}), ...(e.terminating !== undefined ? { terminating: e.terminating } : {}) },
      ...(e.zones ? { hints: { forZones: e.zones.map((z) => ({ name: z })) } } : {}),
    })),
  };
}

const HTTP = [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" as unknown as number }];
const onePort = (svc: V1Service, slices: V1EndpointSlice[]): ServicePort => (planService(svc, slices) as ServicePlan).ports[0]!;

describe("planService", () => {
  it("takes a named target port's number from the slices, per Service port name", () => {
    const p = planService(service({ ports: [...HTTP, { name: "metrics", port: 9000, protocol: "TCP" }] }), [slice([{ ip: "10.244.1.2" }], [{ name: "http", port: 8080, protocol: "TCP" }, { name: "metrics", port: 9100, protocol: "TCP" }])]) as ServicePlan;
    expect(p.ports.map((x) => [x.id, x.endpoints.map((e) => `${e.ip}:${e.port}`)])).toEqual([
      ["ns/web/tcp/http", ["10.244.1.2:8080"]],
      ["ns/web/tcp/metrics", ["10.244.1.2:9100"]],
    ]);
  });

  it("merges slices and keeps one copy of an address listed twice (the ready one)", () => {
    const p = onePort(service({ ports: HTTP }), [slice([{ ip: "10.244.1.2", ready: false }, { ip: "10.244.1.3" }]), slice([{ ip: "10.244.1.2" }], undefined, "web-b")]);
    expect(p.endpoints.map((e) => [e.ip, e.ready])).toEqual([["10.244.1.2", true], ["10.244.1.3", true]]);
  });

  it("leaves out what no proxy handles and what another proxy owns", () => {
    expect(planService(service({ clusterIP: "None", ports: HTTP }), [])).toBeUndefined();
    expect(planService(service({ type: "ExternalName", externalName: "example.org" }), [])).toBeUndefined();
    expect(planService(service({ ports: HTTP }, "web", { "service.kubernetes.io/service-proxy-name": "other" }), [])).toBeUndefined();
  });

  it("rejects a malformed Service with a code and a reason", () => {
    const bad = planService(service({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } }, ports: HTTP }), []);
    expect(isInvalid(bad) && bad.code).toBe("SERVICE_INVALID");
    const badIp = planService(service({ clusterIP: "10.96.0.300", ports: HTTP }), []);
    expect(isInvalid(badIp) && badIp.reason).toMatch(/not an IP address/);
  });
});

describe("chooseEndpoints", () => {
  const node = { name: "node1", zone: "a" };
  it("uses terminating endpoints that still serve only when none is ready", () => {
    const svc = service({ ports: HTTP });
    const mixed = onePort(svc, [slice([{ ip: "10.244.1.2" }, { ip: "10.244.1.3", ready: false, serving: true, terminating: true }])]);
    expect(chooseEndpoints(mixed, node).cluster.map((e) => e.ip)).toEqual(["10.244.1.2"]);
    const draining = onePort(svc, [slice([{ ip: "10.244.1.3", ready: false, serving: true, terminating: true }, { ip: "10.244.1.4", ready: false, serving: false, terminating: true }])]);
    expect(chooseEndpoints(draining, node).cluster.map((e) => e.ip)).toEqual(["10.244.1.3"]);
    const gone = onePort(svc, [slice([{ ip: "10.244.1.4", ready: false, serving: false, terminating: true }])]);
    expect(chooseEndpoints(gone, node).reachable).toBe(false);
  });

  it("holds Local policies to this node's endpoints", () => {
    const eps = [slice([{ ip: "10.244.1.2", node: "node1" }, { ip: "10.244.2.2", node: "node2" }])];
    const etp = chooseEndpoints(onePort(service({ type: "NodePort", externalTrafficPolicy: "Local", ports: [{ ...HTTP[0]!, nodePort: 30080 }] }), eps), node);
    expect([etp.cluster.length, etp.local.map((e) => e.ip)]).toEqual([2, ["10.244.1.2"]]);
    const itp = chooseEndpoints(onePort(service({ internalTrafficPolicy: "Local", ports: HTTP }), eps), { name: "node3" });
    expect([itp.usesCluster, itp.local.length, itp.reachable]).toEqual([false, 0, false]);
  });

  it("follows zone hints only when every ready endpoint has one and one names this zone", () => {
    const svc = service({ ports: HTTP });
    const hinted = onePort(svc, [slice([{ ip: "10.244.1.2", zones: ["a"] }, { ip: "10.244.2.2", zones: ["b"] }])]);
    expect(chooseEndpoints(hinted, node).cluster.map((e) => e.ip)).toEqual(["10.244.1.2"]);
    expect(chooseEndpoints(hinted, { name: "node1", zone: "c" }).cluster).toHaveLength(2);
    const partial = onePort(svc, [slice([{ ip: "10.244.1.2", zones: ["a"] }, { ip: "10.244.2.2" }])]);
    expect(chooseEndpoints(partial, node).cluster).toHaveLength(2);
  });
});

describe("compilePort", () => {
  const node = { name: "node1" };
  it("puts a port without endpoints in the reject maps and programs no DNAT", () => {
    const p = onePort(service({ type: "NodePort", ports: [{ ...HTTP[0]!, nodePort: 30080 }] }), []);
    const f = compilePort(p, chooseEndpoints(p, node), CIDR);
    expect(f.noEndpointServices).toEqual(["10.96.0.5 . tcp . 80 : goto reject-chain"]);
    expect(f.noEndpointNodePorts).toEqual(["tcp . 30080 : goto reject-chain"]);
    expect([f.chains, f.clusterIps, f.nodePorts]).toEqual([[], [], []]);
  });

  it("picks among endpoints with a numgen cascade (1/3, 1/2, the rest), masquerades off-cluster clients, hairpins its own endpoints", () => {
    const p = onePort(service({ ports: HTTP }), [slice([{ ip: "10.244.1.2", node: "node1" }, { ip: "10.244.2.2", node: "node2" }, { ip: "10.244.2.3", node: "node2" }])]);
    const f = compilePort(p, chooseEndpoints(p, node), CIDR, "node1");
    expect(f.chains).toEqual([
      {
        name: "svc-ns/web/tcp/http",
        rules: [
          "ip daddr 10.96.0.5 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
          "numgen random mod 3 0 meta l4proto tcp dnat ip to 10.244.1.2:8080",
          "numgen random mod 2 0 meta l4proto tcp dnat ip to 10.244.2.2:8080",
          "meta l4proto tcp dnat ip to 10.244.2.3:8080",
        ],
      },
    ]);
    expect(f.hairpin).toEqual(["10.244.1.2 . 10.244.1.2"]);
    expect(f.clusterIps).toEqual(["10.96.0.5 . tcp . 80 : goto svc-ns/web/tcp/http"]);
  });

  it("gives ClientIP affinity one dynamic set per endpoint with the Service's timeout", () => {
    const p = onePort(service({ sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 90 } }, ports: HTTP }), [slice([{ ip: "10.244.1.2" }])]);
    const f = compilePort(p, chooseEndpoints(p, node), CIDR);
    expect(f.sets).toEqual([{ kind: "set", name: "aff-ns/web/tcp/http__10.244.1.2/8080", type: "ipv4_addr", extra: ["size 65535", "flags dynamic,timeout", "timeout 1m30s"], dynamic: true, elements: [] }]);
    expect(f.chains.find((c) => c.name.startsWith("ep-"))!.rules).toEqual(["update @aff-ns/web/tcp/http__10.244.1.2/8080 { ip saddr }", "meta l4proto tcp dnat ip to 10.244.1.2:8080"]);
    expect(f.chains.find((c) => c.name.startsWith("svc-"))!.rules.slice(1)).toEqual(["ip saddr @aff-ns/web/tcp/http__10.244.1.2/8080 goto ep-ns/web/tcp/http__10.244.1.2/8080", "goto ep-ns/web/tcp/http__10.244.1.2/8080"]);
  });

  it("drops ETP Local traffic from outside on a node without a local endpoint, but pods still reach the Service", () => {
    const p = onePort(service({ type: "NodePort", externalTrafficPolicy: "Local", ports: [{ ...HTTP[0]!, nodePort: 30081 }] }), [slice([{ ip: "10.244.2.2", node: "node2" }])]);
    const f = compilePort(p, chooseEndpoints(p, node), CIDR);
    expect(f.chains.find((c) => c.name === "ext-ns/web/tcp/http")!.rules).toEqual([
      "ip saddr 10.244.0.0/16 goto svc-ns/web/tcp/http",
      "fib saddr type local jump mark-for-masquerade",
      "fib saddr type local goto svc-ns/web/tcp/http",
      "goto local-ns/web/tcp/http",
    ]);
    expect(f.chains.find((c) => c.name === "local-ns/web/tcp/http")!.rules).toEqual(["drop"]);
    expect(f.nodePorts).toEqual(["tcp . 30081 : goto ext-ns/web/tcp/http"]);
  });

  it("describes one table whose maps gather every fragment", () => {
    const p = onePort(service({ ports: HTTP }), [slice([{ ip: "10.244.1.2" }])]);
    const d = describeProxy([compilePort(p, chooseEndpoints(p, node), CIDR)], ["172.30.0.11"]);
    expect(d.table).toBe("twill-proxy");
    expect(d.sets.find((s) => s.name === "cluster-ips")!.elements).toEqual(["10.96.0.5 . tcp . 80 : goto svc-ns/web/tcp/http"]);
    expect(d.sets.find((s) => s.name === "node-ips")!.elements).toEqual(["172.30.0.11"]);
  });

  it("prints durations the way nft lists them", () => {
    expect([nftDuration(10800), nftDuration(90), nftDuration(86401)]).toEqual(["3h", "1m30s", "1d1s"]);
  });
});

describe("udpFlushes", () => {
  const node = { name: "node1" };
  const udp = (eps: Ep[]) => {
    const p = onePort(service({ type: "NodePort", ports: [{ name: "dns", port: 53, protocol: "UDP", nodePort: 30053 }] }), [slice(eps, [{ name: "dns", port: 5353, protocol: "UDP" }])]);
    return [{ port: p, chosen: chooseEndpoints(p, node) }];
  };
  it("deletes a removed endpoint's entries by ClusterIP and NodePort", () => {
    expect(udpFlushes(udp([{ ip: "10.244.1.2" }, { ip: "10.244.1.3" }]), udp([{ ip: "10.244.1.3" }]))).toEqual([
      { kind: "endpoint", vip: "10.96.0.5", endpoint: "10.244.1.2" },
      { kind: "nodeport-endpoint", nodePort: 30053, endpoint: "10.244.1.2" },
    ]);
    expect(flushArgs({ kind: "endpoint", vip: "10.96.0.5", endpoint: "10.244.1.2" })).toEqual(["-D", "-p", "udp", "--orig-dst", "10.96.0.5", "--reply-src", "10.244.1.2"]);
  });
  it("clears what a rejecting port left once it gets an endpoint", () => {
    expect(udpFlushes(udp([]), udp([{ ip: "10.244.1.2" }]))).toEqual([{ kind: "vip", vip: "10.96.0.5" }, { kind: "nodeport", nodePort: 30053 }]);
    expect(udpFlushes(udp([{ ip: "10.244.1.2" }]), udp([{ ip: "10.244.1.2" }]))).toEqual([]);
  });
});

describe("LoadBalancer pools", () => {
  const pool = (cidrs: string[], name = "p") => parsePool({ metadata: { name }, spec: { cidrs } }) as LbPool;
  const lb = (name: string, created: string, o: { cls?: string; ip?: string } = {}): V1Service => ({
    metadata: { name, namespace: "ns", creationTimestamp: new Date(created) },
    spec: { type: "LoadBalancer", ...(o.cls ? { loadBalancerClass: o.cls } : {}) },
    ...(o.ip ? { status: { loadBalancer: { ingress: [{ ip: o.ip }] } } } : {}),
  });
  it("keeps held addresses, gives the oldest Service the lowest free one, skips network and broadcast", () => {
    const got = allocate([pool(["203.0.113.0/30"])], [lb("b", "2026-01-02"), lb("a", "2026-01-03"), lb("held", "2026-01-04", { ip: "203.0.113.1" })]);
    expect(Object.fromEntries(got)).toEqual({ "ns/held": "203.0.113.1", "ns/b": "203.0.113.2" });
  });
  it("leaves Services of another loadBalancerClass alone and takes back an address outside every pool", () => {
    const got = allocate([pool(["203.0.113.8/32"])], [lb("other", "2026-01-01", { cls: "example.com/lb" }), lb("moved", "2026-01-02", { ip: "198.51.100.7" }), lb("twill", "2026-01-03", { cls: TWILL_LB_CLASS })]);
    expect(Object.fromEntries(got)).toEqual({ "ns/moved": "203.0.113.8" });
  });
  it("says what is wrong with a pool", () => {
    expect(parsePool({ metadata: { name: "x" }, spec: { cidrs: ["2001:db8::/64"] } })).toEqual({ name: "x", error: "2001:db8::/64: only IPv4 pools are served so far" });
    expect(parsePool({ metadata: { name: "y" }, spec: {} })).toMatchObject({ error: "spec.cidrs must list at least one IPv4 CIDR" });
  });
});

describe("advertised", () => {
  it("announces ClusterIPs and external addresses; under ETP Local only while this node has a local endpoint", () => {
    const etpLocal = service({ type: "LoadBalancer", externalTrafficPolicy: "Local", externalIPs: ["192.0.2.7"], ports: [{ ...HTTP[0]!, nodePort: 30080 }] });
    const eps = [slice([{ ip: "10.244.2.2", node: "node2" }])];
    const planned = (svc: V1Service, node: string) => [{ ports: (planService(svc, eps) as ServicePlan).ports.map((port) => ({ port, chosen: chooseEndpoints(port, { name: node }) })) }];
    expect(advertised(planned(etpLocal, "node2"))).toEqual(["10.96.0.5/32", "192.0.2.7/32"]);
    expect(advertised(planned(etpLocal, "node1"))).toEqual([]);
    expect(advertised(planned(service({ ports: HTTP }), "node1"))).toEqual(["10.96.0.5/32"]);
  });
});

describe("Service routes over BGP", () => {
  const local = { asn: 64512, routerId: 1, clusterId: undefined };
  const peer = (id: string, internal: boolean) => ({ id, address: 1n, asn: internal ? 64512 : 64513, bgpId: 2, internal, rrClient: false });
  const route = (from: string, communities?: number[]): Route => ({ prefix: "203.0.113.17/32", peer: from, attrs: { origin: 0, ...(communities ? { communities } : {}) }, nextHop: "172.30.0.11", stale: false });
  it("a node's own Service /32 goes to other ASes without the mark; one learned from another node does not go on", () => {
    // As decoded off the wire: an unsigned 32-bit value.
    const mark = 4227865789;
    expect(SERVICE_ROUTE_COMMUNITY).toBe(mark);
    const own = exportRoute(route(LOCAL, [SERVICE_ROUTE_COMMUNITY]), undefined, peer("router", false), local);
    expect(own?.attrs.communities).toBeUndefined();
    expect(exportRoute(route(LOCAL, [SERVICE_ROUTE_COMMUNITY]), undefined, peer("node2", true), local)?.attrs.communities).toEqual([mark]);
    expect(exportRoute(route("node1", [mark]), peer("node1", true), peer("router", false), local)).toBeUndefined();
    expect(exportRoute(route("node1"), peer("node1", true), peer("router", false), local)).toBeDefined();
  });
});
