import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { kubeProxyConfig } from "../../lab/addons/kube-proxy.ts";
import { addressesPresent, countRuleset, firstWith, transactions } from "../../bench/support/ruleset.ts";
import { benchService, benchSlice, changedEndpoint, fakeEndpoints, serviceName, sliceName } from "../../bench/support/service-objects.ts";
import { figures, report, type Params, type RunResult } from "../../bench/support/services-report.ts";

// `nft -j list ruleset` as this machine's nft 1.0.6 prints it: a kube-proxy-like map with two elements, a chain, and
// an iptables-nft rule (xt expressions inside).
const RULESET = JSON.stringify({
  nftables: [
    { metainfo: { version: "1.0.6", json_schema_version: 1 } },
    { table: { family: "ip", name: "kube-proxy", handle: 1 } },
    { map: { family: "ip", name: "service-ips", table: "kube-proxy", type: ["ipv4_addr", "inet_proto", "inet_service"], map: "verdict", elem: [[{ concat: ["10.96.0.1", "tcp", 443] }, { goto: { target: "service-a" } }], [{ concat: ["10.96.0.2", "tcp", 80] }, { goto: { target: "service-b" } }]] } },
    { set: { family: "ip", name: "cluster-ips", table: "kube-proxy", type: "ipv4_addr", elem: ["10.96.0.1", "10.96.0.2", "10.96.0.3"] } },
    { set: { family: "ip", name: "empty", table: "kube-proxy", type: "ipv4_addr" } },
    { chain: { family: "ip", table: "kube-proxy", name: "service-a", handle: 3 } },
    { table: { family: "ip", name: "nat", handle: 2 } },
    { chain: { family: "ip", table: "nat", name: "PREROUTING", handle: 1, type: "nat", hook: "prerouting", prio: -100, policy: "accept" } },
    { rule: { family: "ip", table: "nat", chain: "PREROUTING", handle: 2, expr: [{ xt: { type: "match", name: "comment" } }, { xt: { type: "target", name: "DNAT" } }] } },
    { rule: { family: "ip", table: "kube-proxy", chain: "service-a", handle: 4, expr: [{ vmap: { key: { numgen: { mode: "random", mod: 2 } }, data: { set: [[0, { goto: { target: "x" } }], [1, { goto: { target: "y" } }]] } } }] } },
  ],
});

describe("countRuleset", () => {
  it("counts tables, chains, rules, named sets and maps and their elements; an anonymous vmap is part of its rule", () => {
    expect(countRuleset(RULESET)).toEqual({ tables: 2, chains: 2, rules: 2, sets: 2, maps: 1, elements: 5 });
  });
  it("reads an empty namespace's ruleset", () => {
    expect(countRuleset(JSON.stringify({ nftables: [{ metainfo: { version: "1.0.6" } }] }))).toEqual({ tables: 0, chains: 0, rules: 0, sets: 0, maps: 0, elements: 0 });
  });
});

// `nft monitor` in a namespace (captured here): events, then each commit's generation line.
const MONITOR = [
  [100, "add table ip t"],
  [101, "# new generation 2 by process 28815 (nft)"],
  [200, "add chain ip kube-proxy endpoint-X-ns/svc/tcp/__10.247.0.1/8080"],
  [203, "add rule ip kube-proxy endpoint-X-ns/svc/tcp/__10.247.0.1/8080 meta l4proto tcp dnat to 10.247.0.1 . 8080"],
  [205, "# new generation 3 by process 4242 (kube-proxy)"],
  [300, "add rule ip nat KUBE-SEP-ABC ip saddr 10.247.0.10 counter packets 0 bytes 0 jump KUBE-MARK-MASQ"],
  [301, "add rule ip nat KUBE-SEP-ABC ip protocol tcp counter packets 0 bytes 0 dnat to 10.247.0.10:8080"],
  [320, "# new generation 4 by process 4343 (iptables-nft-re)"],
  [400, "add element ip kube-proxy service-ips { 10.96.0.9 . tcp . 80 : goto service-c }"],
].map(([t, line]) => ({ t: t as number, line: line as string }));

describe("monitor transactions", () => {
  it("groups events by commit, stamped at the first event read and ended by the generation line; an unfinished one is left out", () => {
    const txs = transactions(MONITOR);
    expect(txs.map((t) => [t.generation, t.process, t.t, t.end, t.lines.length])).toEqual([
      [2, "nft", 100, 101, 1],
      [3, "kube-proxy", 200, 205, 2],
      [4, "iptables-nft-re", 300, 320, 2],
    ]);
  });
  it("finds the first commit after the change that names the new address, never a longer address sharing its prefix", () => {
    const txs = transactions(MONITOR);
    expect(firstWith(txs, 150, "10.247.0.1")?.generation).toBe(3);
    expect(firstWith(txs, 250, "10.247.0.1")).toBeUndefined();
    expect(firstWith(txs, 0, "10.247.0.10")?.generation).toBe(4);
    expect(firstWith(txs, 0, "10.96.0.9")).toBeUndefined();
  });
});

describe("addressesPresent", () => {
  it("counts each wanted address once, whole addresses only", () => {
    const listing = "ip daddr 10.96.0.1 tcp dport 443\n10.96.0.1 . tcp . 443 : goto a, 10.96.0.22 . tcp . 80 : goto b";
    expect(addressesPresent(listing, new Set(["10.96.0.1", "10.96.0.2", "10.96.0.22"]))).toBe(2);
  });
});

describe("bench Services and EndpointSlices", () => {
  it("gives every Service three endpoints of its own and every change a new address", () => {
    const all = Array.from({ length: 10_000 }, (_, i) => fakeEndpoints(i)).flat();
    expect(new Set(all).size).toBe(30_000);
    expect(fakeEndpoints(0)).toEqual(["10.244.128.1", "10.244.128.2", "10.244.128.3"]);
    expect(() => fakeEndpoints(10_922)).toThrow(RangeError);
    expect(changedEndpoint(0)).toBe("10.247.0.1");
    expect(new Set(Array.from({ length: 1000 }, (_, n) => changedEndpoint(n))).size).toBe(1000);
    expect(all).not.toContain(changedEndpoint(5));
  });
  it("writes a selector-less Service and a slice kube-proxy attaches to it (service-name label, unnamed port like the Service's)", () => {
    const svc = benchService(serviceName(7)) as { metadata: { name: string }; spec: { selector?: unknown; ports: { port: number; targetPort: number }[] } };
    expect(svc.metadata.name).toBe("svc-00007");
    expect(svc.spec.selector).toBeUndefined();
    const slice = benchSlice("svc-00007", ["10.0.0.1", "10.0.0.2"]) as { metadata: { name: string; labels: Record<string, string> }; endpoints: { addresses: string[]; conditions: { ready: boolean } }[]; ports: { name: string; port: number }[] };
    expect(slice.metadata.name).toBe(sliceName("svc-00007"));
    expect(slice.metadata.labels["kubernetes.io/service-name"]).toBe("svc-00007");
    expect(slice.endpoints.map((e) => [e.addresses[0], e.conditions.ready])).toEqual([["10.0.0.1", true], ["10.0.0.2", true]]);
    expect(slice.ports).toEqual([{ name: "", protocol: "TCP", port: svc.spec.ports[0]!.targetPort }]);
  });
});

describe("kube-proxy tuned", () => {
  it("sets the mode's minSyncPeriod only when asked", () => {
    const n = { name: "node1", ip: "172.30.0.11", dir: "/tmp/x" };
    const tuned = parse(kubeProxyConfig(n, "/k", "nftables", "10.244.0.0/16", "0s")) as Record<string, { minSyncPeriod?: string } | undefined>;
    expect(tuned.nftables?.minSyncPeriod).toBe("0s");
    expect(parse(kubeProxyConfig(n, "/k", "iptables", "10.244.0.0/16", "0s")).iptables.minSyncPeriod).toBe("0s");
    const plain = parse(kubeProxyConfig(n, "/k", "nftables", "10.244.0.0/16")) as Record<string, unknown>;
    expect(plain.nftables).toBeUndefined();
    expect(plain.conntrack).toEqual({ maxPerCore: 0, min: 0 });
  });
});

describe("bench:services figures", () => {
  const run = (proxy: string, size: number, syncS: number, changeMs: number[], fp: number, rate: number): RunResult => ({
    proxy, size, syncS, changeMs, changeEvents: [5, 7, 9], counts: { tables: 1, chains: 10, rules: 20, sets: 1, maps: 2, elements: 30 },
    rssSyncMiB: 50, rssChangesMiB: 55, firstPacketUs: { roundMedians: [fp], p50: fp, p99: fp * 2 }, connPerSec: [rate, rate * 2, rate / 2], load: {},
  });
  const params: Params = { sizes: [1000, 10000], changes: 3, concurrency: 8, rateSeconds: 2, latencyCount: 10, rounds: 3, reference: "ref", notRun: {}, measuredAt: "2026-12-04T00:00:00Z" };
  const results = [run("ref", 1000, 2, [10, 20, 30], 100, 1000), run("Twill", 1000, 1, [1, 2, 12], 100, 1500), run("ref", 10000, 8, [40, 50, 60], 110, 1000), run("Twill", 10000, 2, [4, 5, 6], 100, 900), { proxy: "broken", size: 1000, error: "exited", load: {} }];
  const fig = figures(results, params);
  it("divides every figure by the reference's at the same size, and says 'ratio'", () => {
    expect(fig["Twill, 1000 Services: one EndpointSlice change → kernel p99"]).toEqual({ value: 12, unit: "ms" });
    expect(fig["ratio Twill ÷ ref, 1000 Services: one EndpointSlice change → kernel p99"]).toEqual({ value: 0.4, unit: "ratio" });
    expect(fig["ratio Twill ÷ ref, 10000 Services: full sync"]!.value).toBe(0.25);
    expect(fig["ratio Twill ÷ ref, 10000 Services: new connections per second"]!.value).toBe(0.9);
    expect(fig["ratio first-packet latency p50 10000 ÷ 1000 Services, ref"]!.value).toBe(1.1);
    expect(Object.keys(fig).filter((k) => k.includes("broken"))).toEqual([]);
    for (const [k, v] of Object.entries(fig)) expect(k.startsWith("ratio ")).toBe(v.unit === "ratio");
  });
  it("judges the issue's goals from those ratios and shows a failed run as failed", () => {
    const md = report(results, fig, params, true);
    expect(md).toContain("| one EndpointSlice change → kernel p99, 1,000 Services | 0.4× | ≤ 0.5× | met |");
    expect(md).toContain("| new connections per second, 10,000 Services | 0.9× | ≥ 1.0× | not met |");
    expect(md).toContain("| broken | failed: exited |");
    expect(md).not.toContain("Partial");
  });
});
