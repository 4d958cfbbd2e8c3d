// npm run bench:services [-- --sizes 1000,10000 --changes 40 --proxies all]
//
// Service proxies side by side: the real kube-proxy (nftables and iptables
// modes, at its defaults and tuned to minSyncPeriod 0) and Twill's service
// proxy (daemon/proxy, serviceProxy: true), each started in turn on a fresh
// node namespace of a kubelet-less lab (etcd, kube-apiserver,
// kube-controller-manager), against 1,000 then 10,000 Services of 3
// endpoints each. Per proxy and size: full sync (start → the last-created
// Service answers, then confirmed against the whole ruleset), one
// EndpointSlice change → its kernel transaction (nft monitor in the node's
// namespace), rule/element counts, RSS, new connections/s through a
// ClusterIP and first-packet (handshake) latency to the last-created Service.
// Ratios against kube-proxy nftables tuned.
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { controlPlaneBinaries } from "../lab/binaries.ts";
import type { LabNode } from "../lab/cluster.ts";
import { rawRequest } from "../lab/kube.ts";
import { startLab, type RunningLab } from "../lab/lab.ts";
import { CLUSTER_CIDR, podNs } from "../lab/names.ts";
import { pkiFiles } from "../lab/pki.ts";
import { stop, tail, type LabProcess } from "../lab/process.ts";
import { createNodeHost } from "../lab/topology.ts";
import { addNetns, deleteNetns, execIn } from "../lib/kernel/netns.ts";
import { formatIp, parseCidr } from "../lib/net/cidr.ts";
import { startNftMonitor } from "./support/nft-monitor.ts";
import { ALL_PROXIES, REFERENCE, type BenchContext, type ProxyUnderTest } from "./support/proxies.ts";
import { REPO, updateDocSection, writeResults } from "./support/report.ts";
import { figures, report, type Params, type RunResult } from "./support/services-report.ts";
import { addressesPresent, countRuleset, firstWith, transactions, type RulesetCounts } from "./support/ruleset.ts";
import { BENCH_NAMESPACE, benchService, benchSlice, changedEndpoint, fakeEndpoints, SERVICE_PORT, serviceName, sliceName, TARGET_PORT } from "./support/service-objects.ts";
import { median, percentile } from "./support/stats.ts";

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,10000" },
    changes: { type: "string", default: "40" },
    proxies: { type: "string", default: "all" },
    "latency-count": { type: "string", default: "300" },
    rounds: { type: "string", default: "5" },
    "rate-seconds": { type: "string", default: "3" },
    concurrency: { type: "string", default: "8" },
    /** Render bench-results/services.json again (figures and docs/benchmarks.md) without measuring. */
    report: { type: "boolean", default: false },
    /** With --report: another saved run whose sizes the main one lacks (a 1,000 and a 10,000 run, each with its own reference). */
    with: { type: "string", multiple: true, default: [] },
  },
});
const SIZES = args.sizes.split(",").map(Number).sort((a, b) => a - b);
const CHANGES = Number(args.changes);
const LATENCY_COUNT = Number(args["latency-count"]);
const ROUNDS = Number(args.rounds);
const RATE_SECONDS = Number(args["rate-seconds"]);
const CONCURRENCY = Number(args.concurrency);
const PROXIES = ALL_PROXIES().filter((p) => args.proxies === "all" || args.proxies.split(",").some((want) => p.id.toLowerCase().includes(want.trim().toLowerCase())));
const LOADER = join(REPO, "bench/support/conn-load.ts");
const say = (m: string) => process.stderr.write(`[bench:services] ${m}\n`);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * One apiserver write, tried again when the apiserver times out or is overloaded (a shared 2-core machine
 * under load does both). A POST whose first try landed answers 409 on the next: then the object is read back.
 */
async function api(lab: RunningLab, method: string, path: string, body?: unknown, type?: string): Promise<{ status: number; body: string }> {
  for (let attempt = 1; ; attempt++) {
    let r: { status: number; body: string } | undefined;
    let err: unknown;
    try {
      r = await rawRequest(lab.forwarder.port, lab.state.admin, method, path, body, type);
    } catch (e) {
      err = e;
    }
    if (r && r.status === 409 && method === "POST" && attempt > 1) {
      const name = (body as { metadata: { name: string } }).metadata.name;
      return api(lab, "GET", `${path}/${name}`);
    }
    if (r && r.status < 300) return r;
    const retry = !r || r.status === 429 || r.status >= 500;
    if (!retry || attempt >= 20) throw new Error(`${method} ${path}: ${r ? `${r.status} ${r.body.slice(0, 300)}` : String(err)}`);
    say(`${method} ${path}: ${r ? r.status : String(err)}; trying again`);
    await sleep(Math.min(5000, 500 * attempt));
  }
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

/** A pod-like namespace with a routed veth to the node (the shape of Twill's CNI: /32, gateway 169.254.1.1). */
interface BenchPod {
  ns: string;
  ip: string;
  dev: string;
}

/** (Re)connects the bench's pods to a node namespace; their namespaces and servers outlive node namespaces. */
async function plumb(node: LabNode, pods: BenchPod[]): Promise<void> {
  for (const p of pods) {
    await execIn(node.ns, ["ip", "link", "add", p.dev, "type", "veth", "peer", "name", "eth0", "netns", p.ns]);
    await execIn(node.ns, ["ip", "link", "set", p.dev, "up"]);
    await execIn(p.ns, ["ip", "addr", "replace", `${p.ip}/32`, "dev", "eth0"]);
    await execIn(p.ns, ["ip", "link", "set", "eth0", "up"]);
    await execIn(p.ns, ["ip", "route", "replace", "169.254.1.1", "dev", "eth0", "scope", "link"]);
    await execIn(p.ns, ["ip", "route", "replace", "default", "via", "169.254.1.1", "dev", "eth0"]);
    const mac = (await execIn(node.ns, ["cat", `/sys/class/net/${p.dev}/address`])).stdout.trim();
    await execIn(p.ns, ["ip", "neigh", "replace", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent"]);
    await execIn(node.ns, ["ip", "route", "replace", `${p.ip}/32`, "dev", p.dev]);
  }
}

/** The loader in the client namespace; its one JSON line. */
async function load<T>(client: BenchPod, argv: string[]): Promise<T> {
  const r = await execIn(client.ns, [process.execPath, LOADER, ...argv], { allowFailure: true });
  if (r.code !== 0) throw new Error(`conn-load ${argv.join(" ")} in ${client.ns} failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as T;
}

async function startServer(pod: BenchPod): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", pod.ns, process.execPath, LOADER, "serve", String(TARGET_PORT)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`the server in ${pod.ns} exited (${code})`)));
  });
  return child;
}


interface World {
  lab: RunningLab;
  ctx: BenchContext;
  node: LabNode;
  client: BenchPod;
  pods: BenchPod[];
  /** ClusterIP of every bench Service, by name. */
  clusterIps: Map<string, string>;
  /** Current endpoint addresses of each fake Service. */
  fakes: Map<string, string[]>;
  changes: number;
}

async function measure(w: World, proxy: ProxyUnderTest, size: number, target: string): Promise<RunResult> {
  const res: RunResult = { proxy: proxy.id, size, load: {} };
  const targetIp = w.clusterIps.get(target)!;
  const dir = join(w.lab.state.dir, "svcbench", `${proxy.id.replaceAll(" ", "-")}-${size}`);
  mkdirSync(dir, { recursive: true });
  // A fresh node: nothing of the previous proxy (rules, sysctls, conntrack) survives.
  await deleteNetns(w.node.ns);
  await createNodeHost(w.lab.state.name, 1);
  await plumb(w.node, w.pods);
  let proc: LabProcess | undefined;
  try {
    const t0 = now();
    proc = await proxy.start(w.ctx, w.node, dir);
    const p = proc;
    const died = (async () => {
      while (!p.exited()) await sleep(200);
      throw new Error(`${proxy.id} exited; see ${p.log}\n${tail(p.log, 20)}`);
    })();
    const answered = await Promise.race([load<{ t: number }>(w.client, ["wait", targetIp, String(SERVICE_PORT), "600000"]), died]);
    const wanted = new Set([...w.clusterIps.values()].slice(0, size));
    let present = addressesPresent((await execIn(w.node.ns, ["nft", "list", "ruleset"])).stdout, wanted);
    res.syncConfirmedAtProbe = present === wanted.size;
    let syncEnd = answered.t;
    while (present < wanted.size) {
      if (p.exited()) throw new Error(`${proxy.id} exited; see ${p.log}`);
      if (now() - t0 > 600_000) throw new Error(`${proxy.id}: only ${present} of ${wanted.size} ClusterIPs in the ruleset after 600 s`);
      await sleep(500);
      present = addressesPresent((await execIn(w.node.ns, ["nft", "list", "ruleset"])).stdout, wanted);
      syncEnd = now();
    }
    res.syncS = (syncEnd - t0) / 1000;
    res.load.sync = loadavg();
    say(`${proxy.id}, ${size}: full sync ${res.syncS.toFixed(2)} s${res.syncConfirmedAtProbe ? "" : " (completed after the target answered)"}; load ${res.load.sync}`);

    await sleep(2000);
    res.counts = countRuleset((await execIn(w.node.ns, ["nft", "-j", "list", "ruleset"])).stdout);
    res.rssSyncMiB = rssMiB(p.pid);
    say(`${proxy.id}, ${size}: ${JSON.stringify(res.counts)}; RSS ${res.rssSyncMiB.toFixed(0)} MiB`);

    // One EndpointSlice change at a time: a fake Service's third endpoint moves to an address never seen before.
    const monitor = await startNftMonitor(w.node.ns, "");
    res.changeMs = [];
    res.changeApiMs = [];
    res.changeEvents = [];
    const fakeNames = [...w.fakes.keys()].slice(0, size - 1);
    try {
      for (let k = 0; k < CHANGES; k++) {
        const svc = fakeNames[Math.floor(Math.random() * fakeNames.length)]!;
        const fresh = changedEndpoint(w.changes++);
        const eps = [...w.fakes.get(svc)!.slice(0, 2), fresh];
        monitor.lines.splice(0);
        const c0 = now();
        await api(w.lab, "PATCH", `/apis/discovery.k8s.io/v1/namespaces/${BENCH_NAMESPACE}/endpointslices/${sliceName(svc)}`, { endpoints: (benchSlice(svc, eps) as { endpoints: unknown[] }).endpoints }, "application/merge-patch+json");
        res.changeApiMs.push(now() - c0);
        w.fakes.set(svc, eps);
        for (;;) {
          const tx = firstWith(transactions(monitor.lines), c0, fresh);
          if (tx) {
            res.changeMs.push(tx.t - c0);
            res.changeEvents.push(tx.lines.length);
            break;
          }
          if (now() - c0 > 30_000) throw new Error(`${proxy.id}: endpoint ${fresh} of ${svc} not in the kernel 30 s after the change`);
          if (p.exited()) throw new Error(`${proxy.id} exited; see ${p.log}`);
          await sleep(5);
        }
        // Isolated changes, further apart than the default minSyncPeriod (1 s).
        await sleep(1100 + Math.random() * 500);
      }
    } finally {
      await monitor.stop();
    }
    res.load.changes = loadavg();
    res.rssChangesMiB = rssMiB(p.pid);
    say(`${proxy.id}, ${size}: change → kernel p50 ${percentile(res.changeMs, 50).toFixed(1)} ms, p99 ${percentile(res.changeMs, 99).toFixed(1)} ms (apiserver write p50 ${percentile(res.changeApiMs, 50).toFixed(1)} ms), ${median(res.changeEvents)} kernel events per change; load ${res.load.changes}`);

    const rounds: number[][] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const out = await load<{ us: number[]; failed: number }>(w.client, ["latency", targetIp, String(SERVICE_PORT), String(LATENCY_COUNT)]);
      if (out.failed) say(`${proxy.id}, ${size}: ${out.failed} of ${LATENCY_COUNT} handshakes failed`);
      rounds.push(out.us);
    }
    const all = rounds.flat();
    res.firstPacketUs = { roundMedians: rounds.map((r) => median(r)), p50: median(rounds.map((r) => median(r))), p99: percentile(all, 99) };
    res.load.firstPacket = loadavg();
    res.connPerSec = [];
    for (let r = 0; r < ROUNDS; r++) {
      await execIn(w.node.ns, ["conntrack", "-F"], { allowFailure: true });
      const out = await load<{ connections: number; failed: number; seconds: number }>(w.client, ["rate", targetIp, String(SERVICE_PORT), String(CONCURRENCY), String(RATE_SECONDS)]);
      if (out.failed) say(`${proxy.id}, ${size}: ${out.failed} connections failed during the rate run`);
      res.connPerSec.push(out.connections / out.seconds);
    }
    await execIn(w.node.ns, ["conntrack", "-F"], { allowFailure: true });
    res.load.rate = loadavg();
    say(`${proxy.id}, ${size}: first packet p50 ${res.firstPacketUs.p50.toFixed(0)} µs p99 ${res.firstPacketUs.p99.toFixed(0)} µs; ${median(res.connPerSec).toFixed(0)} connections/s at ${CONCURRENCY}; load ${res.load.rate}`);
  } catch (err) {
    res.error = String(err instanceof Error ? err.message : err).split("\n")[0];
    // The lab's directory goes with the lab: keep the failed proxy's log where it can be read afterwards.
    if (proc) {
      const kept = join(tmpdir(), `twill-bench-services-${proxy.id.replaceAll(" ", "-")}-${size}.log`);
      cpSync(proc.log, kept);
      res.error += ` (its log: ${kept})`;
    }
    say(`${proxy.id}, ${size}: FAILED: ${String(err)}`);
  } finally {
    if (proc) {
      stop(proc);
      while (!proc.exited()) await sleep(50);
    }
  }
  return res;
}

/** Creates Services up to `size` (fakes, then one target with the real servers as endpoints); returns the target's name. */
async function growTo(w: World, size: number, servers: BenchPod[]): Promise<string> {
  const have = w.clusterIps.size;
  const fakes = Array.from({ length: size - 1 - have }, (_, k) => serviceName(w.fakes.size + k));
  const target = `target-${size}`;
  const t = now();
  const create = async (name: string, eps: string[]) => {
    const r = await api(w.lab, "POST", `/api/v1/namespaces/${BENCH_NAMESPACE}/services`, benchService(name));
    w.clusterIps.set(name, (JSON.parse(r.body) as { spec: { clusterIP: string } }).spec.clusterIP);
    await api(w.lab, "POST", `/apis/discovery.k8s.io/v1/namespaces/${BENCH_NAMESPACE}/endpointslices`, benchSlice(name, eps));
  };
  await pool(fakes, 16, async (name) => {
    const eps = fakeEndpoints(Number(name.slice(4)));
    await create(name, eps);
    w.fakes.set(name, eps);
  });
  // Created last, on its own: the last-created Service (iptables mode's chain grows with every one before it).
  await create(target, servers.map((s) => s.ip));
  say(`${size} Services in the apiserver (${fakes.length} created in ${((now() - t) / 1000).toFixed(0)} s); target ${target} at ${w.clusterIps.get(target)}`);
  return target;
}

function publish(results: RunResult[], params: Params, complete: boolean) {
  const fig = figures(results, params);
  writeResults("services", fig, { complete, ...params, runs: results });
  updateDocSection("services", report(results, fig, params, complete));
  return fig;
}

/** --report: the saved run rendered again (after a change to the report's layout), nothing measured. */
function rerender(): void {
  type Saved = Params & { complete: boolean; runs: RunResult[]; bench?: string; figures?: unknown };
  const read = (path: string) => JSON.parse(readFileSync(path, "utf8")) as Saved;
  const { complete, runs, bench: _bench, figures: _figures, ...params } = read(join(REPO, "bench-results/services.json"));
  const parts = params.parts ?? [{ measuredAt: params.measuredAt, sizes: params.sizes }];
  for (const path of args.with) {
    const other = read(path);
    const sizes = other.sizes.filter((s) => !params.sizes.includes(s));
    runs.push(...other.runs.filter((r) => sizes.includes(r.size)));
    params.sizes = [...params.sizes, ...sizes].sort((a, b) => a - b);
    parts.push({ measuredAt: other.measuredAt, sizes });
  }
  // Complete when every size has a run of every proxy that ran at any size.
  const ids = new Set(runs.map((r) => r.proxy));
  const whole = params.sizes.every((size) => [...ids].every((id) => runs.some((r) => r.proxy === id && r.size === size)));
  publish(runs, { ...params, ...(parts.length > 1 ? { parts } : {}) }, args.with.length ? whole : complete);
  say("bench-results/services.json and docs/benchmarks.md rendered again from the saved runs");
}

async function main(): Promise<void> {
  const bin = await controlPlaneBinaries(say, true);
  let lab: RunningLab | undefined;
  const servers: ChildProcess[] = [];
  const onSignal = async () => {
    for (const s of servers) s.kill();
    await lab?.close();
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  lab = await startLab({ nodes: 1, podsPerNode: 0, backend: "host-gw", daemon: false, log: (m) => say(`lab: ${m}`) });
  try {
    const node = lab.state.nodes[0]!;
    const base = parseCidr(node.podCIDR).network;
    const pod = (name: string, host: number, dev: string): BenchPod => ({ ns: podNs(lab!.state.name, `svcb-${name}`), ip: formatIp(4, base + BigInt(host)), dev });
    const serverPods = [1, 2, 3].map((k) => pod(`server${k}`, 10 + k, `svcbs${k}`));
    const client = pod("client", 20, "svcbc");
    const pods = [client, ...serverPods];
    for (const p of pods) await addNetns(p.ns);
    for (const s of serverPods) servers.push(await startServer(s));
    const ctx: BenchContext = { bin, pki: pkiFiles(join(lab.state.dir, "pki")), clusterCIDR: CLUSTER_CIDR, kc: lab.kc, apiPort: lab.forwarder.port, admin: lab.state.admin };
    const w: World = { lab, ctx, node, client, pods, clusterIps: new Map(), fakes: new Map(), changes: 0 };
    await api(lab, "POST", "/api/v1/namespaces", { metadata: { name: BENCH_NAMESPACE } });
    const runnable = PROXIES.filter((p) => !p.unavailable);
    const skipped = PROXIES.filter((p) => p.unavailable);
    for (const s of skipped) say(`${s.id}: not run: ${s.unavailable}`);
    const results: RunResult[] = [];
    // Written after every run: a run cut short still leaves what it measured (and says it is partial).
    const params: Params = { sizes: SIZES, changes: CHANGES, concurrency: CONCURRENCY, rateSeconds: RATE_SECONDS, latencyCount: LATENCY_COUNT, rounds: ROUNDS, reference: REFERENCE, notRun: Object.fromEntries(skipped.map((s) => [s.id, s.unavailable!])), measuredAt: new Date().toISOString() };
    const save = (complete: boolean) => publish(results, params, complete);
    for (const size of SIZES) {
      const target = await growTo(w, size, serverPods);
      for (const p of runnable) {
        results.push(await measure(w, p, size, target));
        save(false);
      }
    }
    const fig = save(true);
    for (const [k, v] of Object.entries(fig).filter(([k]) => k.startsWith("ratio "))) say(`${k}: ${v.value}`);
    say("results in bench-results/services.json and docs/benchmarks.md");
  } finally {
    for (const s of servers) s.kill();
    await lab.close();
  }
}

if (args.report) rerender();
else await main();
