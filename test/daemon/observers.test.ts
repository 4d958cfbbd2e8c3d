import { describe, expect, it } from "vitest";
import { sessionObserver } from "../../daemon/health/bgp.ts";
import { cniObserver } from "../../daemon/health/cni.ts";
import { DropAccounting, dropReader } from "../../daemon/health/drops.ts";
import { createMetrics, type Metrics } from "../../daemon/health/metrics.ts";

// The metrics' bookkeeping, read back from prom-client's registry as a
// scrape would see it (the lab test, test/observe, runs the same code under
// a real Prometheus).

async function series(m: Metrics, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (metric?.values ?? []) as { labels: Record<string, string | number>; value: number; metricName?: string }[];
}
const valueOf = async (m: Metrics, name: string, labels: Record<string, string>) =>
  (await series(m, name)).find((s) => (s as { metricName?: string }).metricName === undefined && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe("per-pod drop counters", () => {
  const reading = (counts: Record<string, number>) =>
    Object.entries(counts).map(([key, packets]) => {
      const [direction, ip] = key.split(" ") as ["ingress" | "egress", string];
      const i = Number(ip.split(".")[3]);
      // A pod the daemon cannot name (no longer in its cache) is read as its address.
      return { direction, ip, packets, pod: i === 9 ? ip : `ns/p${i}` };
    });

  it("counts deltas, caps the per-pod series, sums the rest under _other, and keeps the node total whole", async () => {
    const m = createMetrics();
    const d = new DropAccounting(m, 2);
    d.update(reading({ "ingress 10.1.0.1": 3, "ingress 10.1.0.2": 0, "egress 10.1.0.3": 4, "ingress 10.1.0.4": 5, "ingress 10.1.0.9": 1 }));
    d.update(reading({ "ingress 10.1.0.1": 10, "ingress 10.1.0.2": 1, "egress 10.1.0.3": 4, "ingress 10.1.0.4": 6, "ingress 10.1.0.9": 1 }));
    expect(await valueOf(m, "twill_policy_pod_dropped_packets_total", { pod: "p1", direction: "ingress" })).toBe(10);
    expect(await valueOf(m, "twill_policy_pod_dropped_packets_total", { pod: "p3", direction: "egress" })).toBe(4);
    // The cap (2) was reached by p1 and p3: p4's, p2's and the unnamed pod's drops count as _other.
    expect(await valueOf(m, "twill_policy_pod_dropped_packets_total", { pod: "p4" })).toBeUndefined();
    expect(await valueOf(m, "twill_policy_pod_dropped_packets_total", { pod: "_other", direction: "ingress" })).toBe(6 + 1 + 1);
    expect(await valueOf(m, "twill_policy_dropped_packets_total", { direction: "ingress" })).toBe(18);
    expect(await valueOf(m, "twill_policy_dropped_packets_total", { direction: "egress" })).toBe(4);
  });

  it("a pod no longer isolated loses its series and frees its place; a rewritten chain's counter counts from zero", async () => {
    const m = createMetrics();
    const d = new DropAccounting(m, 1);
    d.update(reading({ "ingress 10.1.0.1": 5 }));
    d.update(reading({ "ingress 10.1.0.2": 2 }));
    expect(await valueOf(m, "twill_policy_pod_dropped_packets_total", { pod: "p1" })).toBeUndefined();
    expect(await valueOf(m, "twill_policy_pod_dropped_packets_total", { pod: "p2" })).toBe(2);
    d.update(reading({ "ingress 10.1.0.2": 1 }));
    expect(await valueOf(m, "twill_policy_pod_dropped_packets_total", { pod: "p2" })).toBe(3);
    expect(await valueOf(m, "twill_policy_dropped_packets_total", { direction: "ingress" })).toBe(8);
  });

  it("reads at most once per interval, however often Prometheus scrapes", async () => {
    const d = new DropAccounting(createMetrics());
    let reads = 0;
    const hook = dropReader(d, async () => (reads++, []), () => {}, 60_000);
    await Promise.all([hook(), hook()]);
    await hook();
    expect(reads).toBe(1);
  });
});

describe("BGP sessions", () => {
  it("session up per configured peer, transitions, prefixes, and a flapping peer after three downs in ten minutes", async () => {
    const m = createMetrics();
    let now = 0;
    const events: string[] = [];
    const o = sessionObserver(m, { peerDown: (p) => events.push(`down ${p}`), peerFlapping: (p, n) => events.push(`flapping ${p} ${n}`) }, () => now);
    o.peers(["10.0.0.2", "10.0.0.3"]);
    expect(await valueOf(m, "twill_bgp_session_up", { peer: "10.0.0.3" })).toBe(0);
    o.peerState("10.0.0.2", true, "passive");
    o.prefixes(new Map([["10.0.0.2", 7]]), 1);
    expect(await valueOf(m, "twill_bgp_session_up", { peer: "10.0.0.2" })).toBe(1);
    expect(await valueOf(m, "twill_bgp_prefixes_received", { peer: "10.0.0.2" })).toBe(7);
    expect(await valueOf(m, "twill_bgp_prefixes_received", { peer: "10.0.0.3" })).toBe(0);
    for (const t of [0, 60_000, 120_000]) {
      now = t;
      o.peerState("10.0.0.2", false, "hold timer expired");
    }
    expect(events).toEqual(["down 10.0.0.2", "down 10.0.0.2", "down 10.0.0.2", "flapping 10.0.0.2 3"]);
    now = 20 * 60_000;
    o.peerState("10.0.0.2", false, "again");
    expect(events.at(-1)).toBe("down 10.0.0.2");
    expect(await valueOf(m, "twill_bgp_session_transitions_total", { peer: "10.0.0.2", state: "down" })).toBe(4);
    o.peers(["10.0.0.3"]);
    expect(await valueOf(m, "twill_bgp_session_up", { peer: "10.0.0.2" })).toBeUndefined();
  });
});

describe("CNI timing from the pod notices", () => {
  it("ADD: the plugin's time until its notice plus the daemon's until its answer; DEL and failed ADDs from their own fields", async () => {
    const m = createMetrics();
    const failures: string[] = [];
    const o = cniObserver(m, (n) => failures.push(n.code ?? ""));
    const pod = { namespace: "ns", name: "p", uid: "u" };
    await o.handle({ version: 1, op: "add", pod, containerId: "c", ifname: "eth0", ips: ["10.1.0.2"], elapsedMs: 20 }, () => new Promise((r) => setTimeout(() => r({ ok: true, programmed: true, ms: 30 }), 30)));
    await o.handle({ version: 1, op: "del", pod, containerId: "c", elapsedMs: 15, code: "KERNEL_FAILED" }, async () => ({ ok: true, forgotten: true }));
    await o.handle({ version: 1, op: "failed", command: "ADD", pod, containerId: "d", elapsedMs: 5, code: "IPAM_EXHAUSTED" }, async () => ({ ok: true, noted: true }));
    const sum = async (command: string) => (await series(m, "twill_cni_duration_seconds")).find((s) => (s as { metricName?: string }).metricName === "twill_cni_duration_seconds_sum" && s.labels.command === command)?.value;
    expect(await sum("ADD")).toBeGreaterThanOrEqual(0.045);
    expect(await sum("DEL")).toBeCloseTo(0.015);
    expect(await valueOf(m, "twill_cni_errors_total", { command: "ADD", code: "IPAM_EXHAUSTED" })).toBe(1);
    expect(await valueOf(m, "twill_cni_errors_total", { command: "DEL", code: "KERNEL_FAILED" })).toBe(1);
    expect(failures).toEqual(["KERNEL_FAILED", "IPAM_EXHAUSTED"]);
  });
});
