import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { CoreV1Api, NetworkingV1Api, PatchStrategy, setHeaderOptions, type CoreV1Event } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exchange } from "../../cni/commands/notify.ts";
import { apiserverSink, EventRecorder } from "../../daemon/cluster/events.ts";
import { createLogger } from "../../lib/log.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { DAEMON_SOCKET_NAME } from "../../lib/node-file.ts";
import { createPod, deletePodNetwork, type LabPod } from "../../lab/cluster.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { routerNs } from "../../lab/names.ts";
import { until } from "../support/until.ts";
import { startPrometheus, type Prometheus } from "./prometheus.ts";

// The daemons' metrics, scraped by a real Prometheus inside the lab (its
// router namespace reaches every node's :9099 over the underlay), the Events
// they write, read back from the real apiserver, and the Grafana dashboard's
// every query run against that Prometheus. Its own lab, on the bgp backend,
// so the BGP series exist: two nodes, one session each way.

const REPO = resolve(import.meta.dirname, "../..");
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

let lab: RunningLab;
let prom: Prometheus;
const core = () => lab.kc.makeApiClient(CoreV1Api);
const net = () => lab.kc.makeApiClient(NetworkingV1Api);
const num = async (q: string) => {
  const v = await prom.scalar(q);
  return Number.isNaN(v) ? 0 : v;
};
/** The daemons' metrics-only listener (--metrics-port, as the manifest runs them). */
const METRICS_PORT = 9098;
const instance = (i: number) => `${lab.state.nodes[i]!.ip}:${METRICS_PORT}`;

beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 0, backend: "bgp" });
  prom = await startPrometheus(routerNs(lab.state.name), lab.state.nodes.map((n) => `${n.ip}:${METRICS_PORT}`));
}, 300_000);

afterAll(async () => {
  prom?.close();
  await lab?.close();
});

async function eventsAbout(kind: string, name: string, namespace = "default"): Promise<CoreV1Event[]> {
  const list = await core().listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}` });
  return list.items;
}

describe("Prometheus scraping the lab's daemons", () => {
  it("scrapes a listener that serves /metrics and nothing else (no health, no operator API)", async () => {
    const get = async (path: string, at = instance(0)) => (await execIn(routerNs(lab.state.name), ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `http://${at}${path}`])).stdout;
    expect(await get("/metrics")).toBe("200");
    expect(await get("/healthz")).toBe("404");
    expect(await get("/ctl/v1/status")).toBe("404");
    // The health port (bound to 0.0.0.0 in the lab) does answer both.
    expect(await get("/ctl/v1/status", `${lab.state.nodes[0]!.ip}:9099`)).toBe("200");
  });

  it("finds every controller's series on every node", async () => {
    await until("both nodes' BGP sessions Established, as Prometheus sees them", async () => (await num("sum(twill_bgp_session_up)")) === 2);
    for (const i of [0, 1]) {
      const on = `instance="${instance(i)}"`;
      expect(await num(`twill_reconcile_duration_seconds_count{${on}, controller="dataplane"}`)).toBeGreaterThan(0);
      expect(await num(`twill_reconcile_duration_seconds_count{${on}, controller="policy"}`)).toBeGreaterThan(0);
      expect(await num(`twill_watched_objects{${on}, resource="nodes"}`)).toBe(2);
      expect(await num(`twill_programmed_objects{${on}, kind="routes"}`)).toBeGreaterThan(0);
      // One peer each, one prefix (the other node's pod CIDR) learned from it, one announced.
      expect(await num(`sum(twill_bgp_prefixes_received{${on}})`)).toBe(1);
      expect(await num(`twill_bgp_prefixes_advertised{${on}}`)).toBe(1);
      expect(await num(`twill_last_successful_sync_timestamp_seconds{${on}}`)).toBeGreaterThan(1e9);
    }
  });

  let a: LabPod;
  let b: LabPod;
  it("CNI ADD/DEL latency, policy programming and per-pod drops move when pods and a policy come", async () => {
    const [n1, n2] = lab.state.nodes as [(typeof lab.state.nodes)[0], (typeof lab.state.nodes)[0]];
    const adds = await num(`sum(twill_cni_duration_seconds_count{command="ADD"})`);
    const applies = await num(`sum(twill_policy_apply_duration_seconds_count{instance="${instance(1)}"})`);
    const policyPasses = await num(`sum(twill_reconcile_duration_seconds_count{controller="policy"})`);
    a = await createPod(lab.kc, lab.state.name, n1, "obs-a", { podArgs: true });
    b = await createPod(lab.kc, lab.state.name, n2, "obs-b", { podArgs: true });
    await until("Prometheus sees both ADDs, timed by the plugin through the daemons", async () => (await num(`sum(twill_cni_duration_seconds_count{command="ADD"})`)) >= adds + 2);
    // The ADDs' time is in the histogram, not only their number.
    expect(await num(`sum(twill_cni_duration_seconds_sum{command="ADD", instance="${instance(0)}"})`)).toBeGreaterThan(0);

    await net().createNamespacedNetworkPolicy({ namespace: "default", body: { metadata: { name: "obs-deny-b" }, spec: { podSelector: { matchLabels: { app: "obs-b" } }, policyTypes: ["Ingress"] } } });
    await until("node2 isolates b", async () => (await num(`twill_programmed_objects{instance="${instance(1)}", kind="policy_pods"}`)) === 1);
    expect(await num(`sum(twill_policy_apply_duration_seconds_count{instance="${instance(1)}"})`)).toBeGreaterThan(applies);
    expect(await num(`twill_watched_objects{instance="${instance(1)}", resource="networkpolicies"}`)).toBe(1);
    expect(await num(`sum(twill_reconcile_duration_seconds_count{controller="policy"})`)).toBeGreaterThan(policyPasses);
    const drops = `twill_policy_pod_dropped_packets_total{instance="${instance(1)}", namespace="default", pod="obs-b", direction="ingress"}`;
    await until("the pings a sends b show as b's ingress drops", async () => {
      await execIn(a.ns, ["ping", "-c", "2", "-i", "0.2", "-W", "1", b.ip], { allowFailure: true });
      return (await num(drops)) >= 2;
    });
    expect(await num(`twill_policy_dropped_packets_total{instance="${instance(1)}", direction="ingress"}`)).toBeGreaterThanOrEqual(await num(drops));

    const dels = await num(`sum(twill_cni_duration_seconds_count{command="DEL"})`);
    await deletePodNetwork(n1, a);
    await until("Prometheus sees the DEL", async () => (await num(`sum(twill_cni_duration_seconds_count{command="DEL"})`)) > dels);
    await core().deleteNamespacedPod({ name: "obs-a", namespace: "default" });
  });
});

describe("Kubernetes Events", () => {
  it("a policy with unsupported input: one Warning on the policy, however many daemons lint it", async () => {
    await net().createNamespacedNetworkPolicy({
      namespace: "default",
      body: { metadata: { name: "obs-v6" }, spec: { podSelector: {}, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: "fd00::/64" } }] }] } },
    });
    await until("the PolicyUnsupported Event", async () => (await eventsAbout("NetworkPolicy", "obs-v6")).length > 0);
    const [e, ...more] = await eventsAbout("NetworkPolicy", "obs-v6");
    expect(more).toEqual([]);
    expect(e!.type).toBe("Warning");
    expect(e!.reason).toBe("PolicyUnsupported");
    expect(e!.message).toContain("ipBlock fd00::/64 is IPv6");
    expect(e!.involvedObject.uid).toBeTruthy();
    // kubectl's NetworkPolicy describer lists no Events; an operator filters them by the object.
    const listed = await exec([join(lab.state.bin!, "kubectl"), "--kubeconfig", lab.kubeconfig!, "get", "events", "--field-selector", "involvedObject.kind=NetworkPolicy,involvedObject.name=obs-v6"]);
    expect(listed.stdout).toMatch(/Warning\s+PolicyUnsupported\s+networkpolicy\/obs-v6\s+.*ipBlock fd00::\/64 is IPv6/);
  });

  it("IPAM exhaustion reported by the plugin: a Warning on the node, in kubectl describe node, and a CNI error series", async () => {
    const n1 = lab.state.nodes[0]!;
    // What the plugin sends when ADD fails (cni/commands/notify.ts notifyAddFailed), on the daemon's own socket.
    const socket = join(dirname(n1.nodeFile), DAEMON_SOCKET_NAME);
    const reply = await exchange(socket, { version: 1, op: "failed", command: "ADD", pod: { namespace: "default", name: "obs-full", uid: "obs-full-uid" }, containerId: "obs-full", elapsedMs: 4.2, code: "IPAM_EXHAUSTED" }, 2000);
    expect(reply).toEqual({ ok: true, noted: true });
    await until("the IPAMExhausted Event on node1", async () => (await eventsAbout("Node", n1.name)).some((e) => e.reason === "IPAMExhausted"));
    const kubectl = join(lab.state.bin!, "kubectl");
    const described = await exec([kubectl, "--kubeconfig", lab.kubeconfig!, "describe", "node", n1.name]);
    expect(described.stdout).toMatch(/Warning\s+IPAMExhausted\s+.*no free pod address on this node/);
    await until("Prometheus sees the CNI error", async () => (await num(`twill_cni_errors_total{instance="${instance(0)}", command="ADD", code="IPAM_EXHAUSTED"}`)) === 1);
  });

  it("a node left out for a pod CIDR conflict: a Warning on that node", async () => {
    const taken = lab.state.nodes[0]!.podCIDR;
    await core().createNode({ body: { metadata: { name: "obs-ghost" }, spec: { podCIDR: taken, podCIDRs: [taken] } } });
    await core().patchNodeStatus({ name: "obs-ghost", body: { status: { addresses: [{ type: "InternalIP", address: "172.30.0.99" }] } } }, merge);
    // Until its address is patched in it is left out for having none (an Event of its own); then for the conflict.
    const conflict = async () => (await eventsAbout("Node", "obs-ghost")).filter((e) => e.reason === "TwillNodeLeftOut" && e.message!.startsWith("POD_CIDR_CONFLICT"));
    await until("the TwillNodeLeftOut Event for the conflict on obs-ghost", async () => (await conflict()).length > 0);
    await new Promise((r) => setTimeout(r, 1000));
    const events = await conflict();
    // Both daemons leave it out (each in its own words): one Event.
    expect(events.map((e) => e.message)).toHaveLength(1);
    expect(events[0]!.message).toMatch(/^POD_CIDR_CONFLICT: node obs-ghost's pod CIDR/);
    await until("Prometheus counts the left-out node", async () => (await num(`max(twill_nodes_skipped)`)) === 1);
    await core().deleteNode({ name: "obs-ghost" });
  });

  it("a BGP peer going down: session_up drops to 0 and node1 gets BGPPeerDown", async () => {
    const [n1, n2] = lab.state.nodes as [(typeof lab.state.nodes)[0], (typeof lab.state.nodes)[0]];
    const peer = `twill_bgp_session_up{instance="${instance(0)}", peer="${n2.ip}"}`;
    expect(await num(peer)).toBe(1);
    for (const pid of await pidsIn(n2.ns, "daemon/main.ts")) process.kill(pid, "SIGKILL");
    await until("node1's session with node2 down in Prometheus", async () => (await prom.scalar(peer)) === 0);
    await until("the BGPPeerDown Event on node1", async () => (await eventsAbout("Node", n1.name)).some((e) => e.reason === "BGPPeerDown" && e.message!.includes(n2.ip)));
    expect(await num(`twill_bgp_session_transitions_total{instance="${instance(0)}", peer="${n2.ip}", state="down"}`)).toBe(1);
  });
});

describe("the event recorder against the apiserver", () => {
  const log = createLogger({ name: "obs-events", level: "silent" });
  const target = { kind: "Node" as const, apiVersion: "v1", name: "node1" };

  it("repeats of an event are one Event whose count is patched", async () => {
    const rec = new EventRecorder({ component: "obs-test", host: "obs", sink: apiserverSink(lab.kc), log, limits: { patchEveryMs: 200 } });
    for (let i = 0; i < 4; i++) rec.warn(target, "ObsRepeat", "the same thing again");
    await until("the repeats patched in", async () => (await eventsAbout("Node", "node1")).some((e) => e.reason === "ObsRepeat" && e.count === 4));
    expect((await eventsAbout("Node", "node1")).filter((e) => e.reason === "ObsRepeat")).toHaveLength(1);
    rec.stop();
  });

  it("past the burst, events are dropped (and counted), not queued behind the apiserver", async () => {
    const rec = new EventRecorder({ component: "obs-test", host: "obs", sink: apiserverSink(lab.kc), log, limits: { burst: 2, refillMs: 3_600_000 } });
    for (let i = 0; i < 5; i++) rec.warn(target, "ObsBurst", `distinct ${i}`);
    await until("the queue drained", async () => rec.pending() === 0);
    expect((await eventsAbout("Node", "node1")).filter((e) => e.reason === "ObsBurst").map((e) => e.message).sort()).toEqual(["distinct 0", "distinct 1"]);
    rec.stop();
  });
});

describe("the Grafana dashboard (manifests/grafana/twill-dashboard.json)", () => {
  it("every panel's every query returns data from this Prometheus", async () => {
    const dash = JSON.parse(readFileSync(join(REPO, "manifests/grafana/twill-dashboard.json"), "utf8")) as { panels: { type: string; title: string; targets?: { expr: string }[] }[] };
    const queries = dash.panels.filter((p) => p.type !== "row").flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(queries.length).toBeGreaterThan(20);
    // Grafana's variables as a dashboard showing every node would expand them.
    const expand = (e: string) => e.replaceAll("$__rate_interval", "1m").replaceAll("$instance", ".+").replaceAll("$job", ".+");
    const empty: string[] = [];
    for (const q of queries) if ((await prom.query(expand(q.expr))).length === 0) empty.push(`${q.panel}: ${q.expr} (${JSON.stringify(await prom.query(q.expr.match(/twill_[a-z_]+|process_[a-z_]+|nodejs_[a-z_]+/)![0]))})`);
    expect(empty).toEqual([]);
  });
});
