// npm run bench:policy [-- --pods 10000 --policies 1000 --changes 100]
//
// NetworkPolicy at scale, through the real apiserver and Twill's daemons in a
// 2-node lab: 10,000 pods (100 of them on the measured node, their addresses
// real members of its sets; two real pods with probes) and 1,000 policies of
// every peer shape. Measures: policy create/update/delete → verdict flip seen
// by a probe (p50/p99), full initial sync of a restarted daemon, nft rule and
// set element counts, daemon RSS, TCP throughput between the probe pods with
// and without the policies.
import { plotBench, writeSeries } from "./support/plot.ts";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createPod, waitDefaultServiceAccount } from "../lab/cluster.ts";
import { startDaemon } from "../lab/daemons.ts";
import { rawRequest } from "../lab/kube.ts";
import { pidsIn, startLab, type RunningLab } from "../lab/lab.ts";
import { execIn } from "../lib/kernel/netns.ts";
import { iperf } from "./support/iperf.ts";
import { syntheticNamespaces, syntheticPods, syntheticPolicies, type SyntheticOptions } from "./support/policy-cluster.ts";
import { barChart, REPO, updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { mean, percentile, round } from "./support/stats.ts";

const { values: args } = parseArgs({ options: { pods: { type: "string", default: "10000" }, policies: { type: "string", default: "1000" }, changes: { type: "string", default: "100" } } });
const PODS = Number(args.pods);
const POLICIES = Number(args.policies);
const CHANGES = Number(args.changes);
const PROBE_NS = "bench-probe";
const say = (m: string) => process.stderr.write(`[bench:policy] ${m}\n`);

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

function api(lab: RunningLab, method: string, path: string, body?: unknown, type?: string) {
  return rawRequest(lab.forwarder.port, lab.state.admin, method, path, body, type).then((r) => {
    if (r.status >= 300 && !(method === "DELETE" && r.status === 404)) throw new Error(`${method} ${path}: ${r.status} ${r.body.slice(0, 300)}`);
    return r;
  });
}

/** The probe's attempts, "<start ms> <1|0>" lines from bench/support/flip-probe.ts. */
class Prober {
  readonly attempts: { t: number; ok: boolean }[] = [];
  private readonly child;
  constructor(ns: string, ip: string, port: number) {
    this.child = spawn("ip", ["netns", "exec", ns, process.execPath, join(REPO, "bench/support/flip-probe.ts"), ip, String(port), "2", "200"], { stdio: ["pipe", "pipe", "inherit"] });
    let buf = "";
    this.child.stdout.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) {
        const [t, ok] = l.split(" ");
        this.attempts.push({ t: Number(t), ok: ok === "1" });
      }
    });
  }

  /**
   * Waits until the verdict is `want` for good after `t0`: the first attempt
   * started after t0 from which every later one (at least 40 ms of them)
   * agrees. Returns its start − t0 in ms.
   */
  async flip(t0: number, want: boolean, timeoutMs = 10_000): Promise<number> {
    const deadline = t0 + timeoutMs;
    for (;;) {
      await new Promise((r) => setTimeout(r, 20));
      const settled = performance.timeOrigin + performance.now() - 260; // every attempt before this has reported
      const after = this.attempts.filter((a) => a.t >= t0 && a.t <= settled).sort((a, b) => a.t - b.t);
      let first = -1;
      for (let i = after.length - 1; i >= 0 && after[i]!.ok === want; i--) first = i;
      if (first >= 0 && after[after.length - 1]!.t - after[first]!.t >= 40) return after[first]!.t - t0;
      if (performance.timeOrigin + performance.now() > deadline) throw new Error(`the probe did not flip to ${want ? "allowed" : "denied"} within ${timeoutMs} ms`);
    }
  }

  stop(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

const flipPolicy = (allow: boolean) => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "flip", namespace: PROBE_NS },
  spec: { podSelector: { matchLabels: { app: "probe-server" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: allow ? "probe-client" : "nobody" } } }], ports: [{ port: 8080 }, { port: 5201 }] }] },
});
const denyAll = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny-all", namespace: PROBE_NS }, spec: { podSelector: { matchLabels: { app: "probe-server" } }, policyTypes: ["Ingress"] } };

async function nftCounts(ns: string): Promise<{ rules: number; sets: number; elements: number; chains: number }> {
  const out = await execIn(ns, ["nft", "-j", "list", "table", "inet", "twill-policy"]);
  const items = (JSON.parse(out.stdout) as { nftables: Record<string, { elem?: unknown[] }>[] }).nftables;
  let rules = 0;
  let sets = 0;
  let elements = 0;
  let chains = 0;
  for (const it of items) {
    if (it.rule) rules++;
    if (it.chain) chains++;
    const s = it.set ?? it.map;
    if (s) {
      sets++;
      elements += s.elem?.length ?? 0;
    }
  }
  return { rules, sets, elements, chains };
}

/** The elements of the two dispatch maps, as nft prints them. */
async function dispatchElements(ns: string): Promise<{ ingress: string; egress: string }> {
  const elems = async (map: string) => /elements = \{([^}]*)\}/s.exec((await execIn(ns, ["nft", "list", "map", "inet", "twill-policy", map])).stdout)?.[1]?.trim() ?? "";
  return { ingress: await elems("ingress"), egress: await elems("egress") };
}

async function restoreDispatch(ns: string, m: { ingress: string; egress: string }): Promise<void> {
  const cmds = (["ingress", "egress"] as const).filter((k) => m[k]).map((k) => `add element inet twill-policy ${k} { ${m[k].replace(/\s+/g, " ")} }`);
  if (cmds.length) await execIn(ns, ["nft", "-f", "-"], { input: cmds.join("\n") + "\n" });
}

/** The daemon's own /metrics (prom-client's runtime figures included), read inside its node's namespace. */
async function daemonMetrics(ns: string): Promise<Map<string, number>> {
  const text = (await execIn(ns, ["curl", "-sf", "http://127.0.0.1:9099/metrics"])).stdout;
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) ([-0-9.e+]+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

async function daemonPid(lab: RunningLab, node: number): Promise<number> {
  const [pid] = await pidsIn(lab.state.nodes[node]!.ns, "daemon/main.ts");
  if (!pid) throw new Error(`no daemon on ${lab.state.nodes[node]!.name}`);
  return pid;
}

interface Flip {
  kind: string;
  /** Epoch ms when the change was sent. */
  t0: number;
  /** Until the apiserver answered. */
  apiMs: number;
  /** Until the probe's verdict changed for good. */
  ms: number;
}
interface Applied {
  time: string;
  ms: number;
  compileMs: number;
}

/**
 * Splits each flip at the daemon's own log line for the apply it caused (the
 * first "programmed" line after the change was sent): apiserver write, watch
 * delivery (+ the controller's 5 ms coalescing), the apply, and the probe's
 * own resolution. Log times are epoch ms from the same clock.
 */
function breakdown(flips: Flip[], applied: Applied[]) {
  const rows = flips.flatMap((f) => {
    const a = applied.find((x) => Date.parse(x.time) >= f.t0);
    if (!a) return [];
    const done = Date.parse(a.time) - f.t0;
    return [{ ...f, api: f.apiMs, delivery: done - a.ms - f.apiMs, apply: a.ms, compile: a.compileMs, probe: f.ms - done }];
  });
  const pp = (k: "api" | "delivery" | "apply" | "probe") => `${percentile(rows.map((r) => r[k]), 50).toFixed(1)} / ${percentile(rows.map((r) => r[k]), 99).toFixed(1)}`;
  const worst = [...rows].sort((a, b) => b.ms - a.ms).slice(0, 5).map((r) => ({ ...r, detail: `api ${r.api.toFixed(0)}, delivery ${r.delivery.toFixed(0)}, apply ${r.apply} (compile ${r.compile}), probe ${r.probe.toFixed(0)}` }));
  return { api: pp("api"), delivery: pp("delivery"), apply: pp("apply"), probe: pp("probe"), worst, rows };
}

async function main(): Promise<void> {
  const lab = await startLab({ nodes: 2, podsPerNode: 0, backend: "vxlan", log: (m) => say(`lab: ${m}`) });
  let prober: Prober | undefined;
  try {
    const [n1, n2] = lab.state.nodes as [typeof lab.state.nodes[0], typeof lab.state.nodes[0]];
    await api(lab, "POST", "/api/v1/namespaces", { metadata: { name: PROBE_NS } });
    await waitDefaultServiceAccount(lab.kc, PROBE_NS);
    const server = await createPod(lab.kc, lab.state.name, n1, "server", { namespace: PROBE_NS, labels: { app: "probe-server", role: "db", version: "v1" }, exactLabels: true });
    const client = await createPod(lab.kc, lab.state.name, n2, "client", { namespace: PROBE_NS, labels: { app: "probe-client", role: "frontend", version: "v1" }, exactLabels: true });
    await execIn(server.ns, ["sh", "-c", `nohup ${process.execPath} -e "require('net').createServer((s) => s.end()).listen(8080)" >/dev/null 2>&1 &`]);
    say(`probe pods: client ${client.ip} (${n2.name}) → server ${server.ip}:8080 (${n1.name})`);

    // The synthetic cluster: 100 pods on node1 (addresses from its pod CIDR, past the probes'), the rest elsewhere.
    const o: SyntheticOptions = { pods: PODS, policies: POLICIES, namespaces: 20, localNode: n1.name, localCidr: n1.podCIDR, localPods: Math.min(100, PODS), skipLocal: 30, remoteCidr: "10.244.128.0/17" };
    let t = performance.now();
    for (const ns of syntheticNamespaces(o)) await api(lab, "POST", "/api/v1/namespaces", ns);
    for (const ns of syntheticNamespaces(o)) await waitDefaultServiceAccount(lab.kc, ns.metadata!.name!);
    await pool(syntheticPods(o), 16, async (p) => {
      const ns = p.metadata!.namespace!;
      const { status, ...obj } = p;
      await api(lab, "POST", `/api/v1/namespaces/${ns}/pods`, obj);
      await api(lab, "PATCH", `/api/v1/namespaces/${ns}/pods/${p.metadata!.name}/status`, { status }, "application/merge-patch+json");
    });
    say(`${PODS} pods in the apiserver after ${((performance.now() - t) / 1000).toFixed(0)} s`);
    t = performance.now();
    await pool(syntheticPolicies(o), 8, async (p) => {
      await api(lab, "POST", `/apis/networking.k8s.io/v1/namespaces/${p.metadata!.namespace}/networkpolicies`, { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", ...p });
    });
    await api(lab, "POST", `/apis/networking.k8s.io/v1/namespaces/${PROBE_NS}/networkpolicies`, flipPolicy(true));
    say(`${POLICIES} policies in the apiserver after ${((performance.now() - t) / 1000).toFixed(0)} s`);

    // Full initial sync: node1's daemon restarted with everything in place.
    process.kill(await daemonPid(lab, 0), "SIGKILL");
    const logPath = join(n1.dir, "daemon.log");
    const mark = readFileSync(logPath, "utf8").length;
    const started = Date.now();
    startDaemon(n1, lab.state.daemonFiles!);
    let syncMs = 0;
    let syncLine: Record<string, number | string> = {};
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      const line = readFileSync(logPath, "utf8").slice(mark).split("\n").find((l) => l.includes('"NetworkPolicy programmed"'));
      if (line) {
        syncLine = JSON.parse(line) as Record<string, number | string>;
        syncMs = Date.parse(String(syncLine.time)) - started;
        break;
      }
      if (Date.now() - started > 300_000) throw new Error("the restarted daemon did not program NetworkPolicy within 300 s");
    }
    say(`initial sync after restart: ${(syncMs / 1000).toFixed(1)} s (compile ${syncLine.compileMs} ms, isolated pods ${syncLine.isolatedPods})`);
    await new Promise((r) => setTimeout(r, 2000));
    const counts = await nftCounts(n1.ns);
    const pid = await daemonPid(lab, 0);
    const rssAfterSync = rssMiB(pid);
    say(`nft: ${counts.chains} chains, ${counts.rules} rules, ${counts.sets} sets/maps, ${counts.elements} elements; daemon RSS ${rssAfterSync.toFixed(0)} MiB`);

    // Flips: 100 changes, half policy updates (allow ⇄ deny), half create/delete of a deny-all policy.
    const metricsBefore = await daemonMetrics(n1.ns);
    prober = new Prober(client.ns, server.ip, 8080);
    await prober.flip(performance.timeOrigin + performance.now(), true);
    const flips: Flip[] = [];
    const half = Math.floor(CHANGES / 2);
    const policyPath = `/apis/networking.k8s.io/v1/namespaces/${PROBE_NS}/networkpolicies`;
    for (let i = 0; i < half; i++) {
      const allow = i % 2 === 1;
      const t0 = performance.timeOrigin + performance.now();
      await api(lab, "PATCH", `${policyPath}/flip`, { spec: flipPolicy(allow).spec }, "application/merge-patch+json");
      const apiMs = performance.timeOrigin + performance.now() - t0;
      flips.push({ kind: allow ? "update → allow" : "update → deny", t0, apiMs, ms: await prober.flip(t0, allow) });
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
    // Leave "flip" allowing, then toggle a deny-all on top of it: create denies only once "flip" is gone.
    await api(lab, "DELETE", `${policyPath}/flip`);
    await prober.flip(performance.timeOrigin + performance.now(), true);
    for (let i = half; i < CHANGES; i++) {
      const create = (i - half) % 2 === 0;
      const t0 = performance.timeOrigin + performance.now();
      if (create) await api(lab, "POST", policyPath, denyAll);
      else await api(lab, "DELETE", `${policyPath}/deny-all`);
      const apiMs = performance.timeOrigin + performance.now() - t0;
      flips.push({ kind: create ? "create → deny" : "delete → allow", t0, apiMs, ms: await prober.flip(t0, !create) });
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
    prober.stop();
    prober = undefined;
    const all = flips.map((f) => f.ms);
    say(`flip latency over ${all.length} changes: p50 ${percentile(all, 50).toFixed(1)} ms, p99 ${percentile(all, 99).toFixed(1)} ms, max ${Math.max(...all).toFixed(1)} ms`);
    const rssAfterFlips = rssMiB(pid);
    const metricsAfter = await daemonMetrics(n1.ns);
    const during = (k: string) => (metricsAfter.get(k) ?? 0) - (metricsBefore.get(k) ?? 0);
    const gc = {
      majorCount: during('nodejs_gc_duration_seconds_count{kind="major"}'),
      majorSeconds: during('nodejs_gc_duration_seconds_sum{kind="major"}'),
      minorSeconds: during('nodejs_gc_duration_seconds_sum{kind="minor"}'),
      heapUsedMiB: (metricsAfter.get("nodejs_heap_size_used_bytes") ?? 0) / 1048576,
    };
    say(`daemon during the flips: ${gc.majorCount} major GCs (${(gc.majorSeconds * 1000).toFixed(0)} ms), minor GCs ${(gc.minorSeconds * 1000).toFixed(0)} ms; heap used ${gc.heapUsedMiB.toFixed(0)} MiB`);

    // Daemon-side share: the controller's own timing of each apply after the restart.
    const applied = readFileSync(logPath, "utf8").slice(mark).split("\n").filter((l) => l.includes('"NetworkPolicy programmed"') && l.includes('"mode":"diff"')).map((l) => JSON.parse(l) as Applied);
    const parts = breakdown(flips, applied);
    say(`where a flip's time goes (p50 / p99 ms): apiserver write ${parts.api}, write → daemon has the event ${parts.delivery}, daemon apply ${parts.apply}, programmed → probe sees it ${parts.probe}`);
    for (const f of parts.worst) say(`slow flip ${f.ms.toFixed(0)} ms (${f.kind}): ${f.detail}`);

    await api(lab, "POST", policyPath, flipPolicy(true));
    await new Promise((r) => setTimeout(r, 1000));
    // Throughput with the policies in force and without them, alternating so
    // both see the same background load. "Without" empties the dispatch maps
    // on both nodes (no pod isolated: what the same table does with no
    // policies); the daemons are paused meanwhile so they do not put them back.
    const daemons = [await daemonPid(lab, 0), await daemonPid(lab, 1)];
    const maps = await Promise.all([n1, n2].map(async (n) => ({ n, ...(await dispatchElements(n.ns)) })));
    const withPolicies: number[] = [];
    const without: number[] = [];
    for (const d of daemons) process.kill(d, "SIGSTOP");
    try {
      for (let i = 0; i < 3; i++) {
        withPolicies.push(await iperf(client.ns, server.ns, server.ip, 5));
        for (const m of maps) await execIn(m.n.ns, ["nft", "flush map inet twill-policy ingress; flush map inet twill-policy egress"]);
        without.push(await iperf(client.ns, server.ns, server.ip, 5));
        for (const m of maps) await restoreDispatch(m.n.ns, m);
      }
    } finally {
      for (const d of daemons) process.kill(d, "SIGCONT");
    }
    say(`throughput with ${POLICIES} policies (server isolated): ${withPolicies.map((x) => x.toFixed(2)).join(", ")} Gbit/s; without: ${without.map((x) => x.toFixed(2)).join(", ")} Gbit/s`);

    const byKind = (k: string) => flips.filter((f) => f.kind === k).map((f) => f.ms);
    const fig: Record<string, Figure> = {
      "flip latency p50": { value: round(percentile(all, 50), 1), unit: "ms" },
      "flip latency p99": { value: round(percentile(all, 99), 1), unit: "ms" },
      "flip latency max": { value: round(Math.max(...all), 1), unit: "ms" },
      "flip latency p50, update": { value: round(percentile([...byKind("update → allow"), ...byKind("update → deny")], 50), 1), unit: "ms" },
      "flip latency p50, create/delete": { value: round(percentile([...byKind("create → deny"), ...byKind("delete → allow")], 50), 1), unit: "ms" },
      "daemon apply p50 (compile + nft)": { value: round(percentile(applied.map((a) => a.ms), 50), 1), unit: "ms" },
      "daemon compile p50": { value: round(percentile(applied.map((a) => a.compileMs), 50), 1), unit: "ms" },
      "initial sync (daemon restart → table programmed)": { value: round(syncMs / 1000, 2), unit: "s" },
      "isolated local pods": { value: Number(syncLine.isolatedPods ?? 0), unit: "pods" },
      "nft chains": { value: counts.chains, unit: "chains" },
      "nft rules": { value: counts.rules, unit: "rules" },
      "nft sets and maps": { value: counts.sets, unit: "sets" },
      "nft set elements": { value: counts.elements, unit: "elements" },
      "daemon RSS after initial sync": { value: round(rssAfterSync, 0), unit: "MiB" },
      "daemon RSS after flips": { value: round(rssAfterFlips, 0), unit: "MiB" },
      "daemon heap used after flips": { value: round(gc.heapUsedMiB, 0), unit: "MiB" },
      "daemon major GCs during the flips": { value: gc.majorCount, unit: "collections" },
      "daemon major GC time during the flips": { value: round(gc.majorSeconds * 1000, 0), unit: "ms" },
      "nft session RSS after flips": { value: round((await pidsIn(n1.ns, "nft\u0000-i")).map(rssMiB).reduce((a, b) => a + b, 0), 0), unit: "MiB" },
      "throughput without policies": { value: round(mean(without), 2), unit: "Gbit/s" },
      "throughput with policies": { value: round(mean(withPolicies), 2), unit: "Gbit/s" },
      "throughput ratio with/without": { value: round(mean(withPolicies) / mean(without), 3), unit: "ratio" },
    };
    writeResults("policy", fig, { pods: PODS, policies: POLICIES, changes: CHANGES, localPods: o.localPods });
    writeSeries("policy", Object.fromEntries([...new Set(flips.map((x) => x.kind))].map((k) => [`flip ${k}`, flips.filter((x) => x.kind === k).map((x) => x.ms)])));
    const rows = Object.entries(fig).map(([k, v]) => `| ${k} | ${v.value} ${v.unit} |`).join("\n");
    updateDocSection(
      "policy",
      `## NetworkPolicy at scale (\`npm run bench:policy\`)

${PODS.toLocaleString("en")} pods and ${POLICIES.toLocaleString("en")} policies in the lab's real apiserver (20 namespaces; policies of five shapes:
pod selector, namespace+pod selector with a named port, ipBlock with except, all-namespaces set expression with a port range,
ingress+egress); the measured node holds ${o.localPods} of the pods (real set members) plus a real server pod, probed from a real
client pod on the other node by a new TCP connection every 2 ms. A flip is the time from sending the change to the apiserver
until the probe's verdict changes for good, over ${all.length} changes (half policy updates allow ⇄ deny, half create/delete of
a deny-all policy). Goals: p99 < 100 ms; throughput with policies ≥ 0.95× without.

| figure | value |
|---|---|
${rows}

${barChart("Policy change → verdict flip (ms)", "ms", [
  { label: "p50", value: fig["flip latency p50"]!.value },
  { label: "p99", value: fig["flip latency p99"]!.value },
  { label: "daemon apply p50", value: fig["daemon apply p50 (compile + nft)"]!.value },
])}`,
    );
    say(`results in bench-results/policy.json and docs/benchmarks.md`);
    await plotBench("policy");
  } finally {
    prober?.stop();
    await lab.close();
  }
}

await main();
