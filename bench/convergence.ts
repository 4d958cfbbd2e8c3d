// npm run bench:convergence — how fast a real node's kernel follows the
// cluster: Node objects registered in the real apiserver (100, 1,000, 5,000),
// time until one real node's kernel has a route to every one of them, the
// daemon's full sync after a restart, the time from one more node joining
// until its route exists, and the daemon's memory.
import { plotBench, writeSeries, type Series } from "./support/plot.ts";
import { readFileSync } from "node:fs";
import { CoreV1Api, type V1Node } from "@kubernetes/client-node";
import { execIn } from "../lib/kernel/netns.ts";
import { startDaemon } from "../lab/daemons.ts";
import { pidsIn, startLab } from "../lab/lab.ts";
import { barChart, updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { percentile, round } from "./support/stats.ts";

const SIZES = (process.env.BENCH_CONVERGENCE_SIZES ?? "100,1000,5000").split(",").map(Number);
const JOINS = 5;
const CLUSTER = "10.128.0.0/9";

const fakeNode = (i: number): V1Node => ({
  metadata: { name: `fake-${i}`, annotations: { "twill.dev/vtep-mac": `02:fa:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}:01` } },
  // Pod CIDRs are assigned up front (kube-controller-manager keeps an assignment inside its range).
  spec: { podCIDR: `10.${129 + (i >> 8)}.${i & 255}.0/24`, podCIDRs: [`10.${129 + (i >> 8)}.${i & 255}.0/24`] },
  // Nodes may carry status on create, as a kubelet registers.
  status: { addresses: [{ type: "InternalIP", address: `192.168.${(i >> 8) & 255}.${i & 255}` }] },
});

async function createNodes(core: CoreV1Api, from: number, to: number, concurrency = 24): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < to) {
        const i = next++;
        await core.createNode({ body: fakeNode(i) });
      }
    }),
  );
}

async function routeCount(ns: string): Promise<number> {
  const out = (await execIn(ns, ["ip", "route", "show", "proto", "211"])).stdout;
  return out ? out.trim().split("\n").length : 0;
}

async function until(pred: () => Promise<boolean>, timeoutMs = 300_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error("timed out");
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

console.log(`bench:convergence — Node objects in the real apiserver: ${SIZES.join(", ")}`);
const lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", clusterCIDR: CLUSTER });
const fig: Record<string, Figure> = {};
/** Every join's time, per size, for the plots. */
const series: Series = {};
const rows: string[] = [];
try {
  const core = lab.kc.makeApiClient(CoreV1Api);
  const n1 = lab.state.nodes[0]!;
  let created = 0;
  let joinIndex = 20_000;
  for (const size of SIZES) {
    const t0 = performance.now();
    await createNodes(core, created, size);
    const registered = performance.now() - t0;
    created = size;
    const expected = size + 1; // the fakes and the other real node
    await until(async () => (await routeCount(n1.ns)) >= expected);
    const allRoutes = performance.now() - t0;

    // Full sync from scratch: the daemon restarted on a node whose routes are gone.
    for (const pid of await pidsIn(n1.ns, "daemon/main.ts")) process.kill(pid, "SIGKILL");
    await execIn(n1.ns, ["ip", "route", "flush", "proto", "211"]);
    const t1 = performance.now();
    startDaemon(n1, lab.state.daemonFiles!);
    await until(async () => (await routeCount(n1.ns)) >= expected);
    const fullSync = performance.now() - t1;
    await new Promise((r) => setTimeout(r, 1000));

    const joins: number[] = [];
    for (let j = 0; j < JOINS; j++) {
      const node = fakeNode(joinIndex++);
      const dst = node.spec!.podCIDR!;
      const tj = performance.now();
      await core.createNode({ body: node });
      await until(async () => (await execIn(n1.ns, ["ip", "route", "show", dst, "proto", "211"])).stdout.includes(dst), 30_000, 10);
      joins.push(performance.now() - tj);
    }
    const [pid] = await pidsIn(n1.ns, "daemon/main.ts");
    const rss = rssMiB(pid!);
    fig[`n${size}_register_s`] = { value: round(registered / 1000), unit: "s" };
    fig[`n${size}_all_routes_s`] = { value: round(allRoutes / 1000), unit: "s" };
    fig[`n${size}_full_sync_s`] = { value: round(fullSync / 1000), unit: "s" };
    series[`join_to_route_ms_n${size}`] = joins;
    fig[`n${size}_join_to_route_p50_ms`] = { value: round(percentile(joins, 50)), unit: "ms" };
    fig[`n${size}_join_to_route_max_ms`] = { value: round(Math.max(...joins)), unit: "ms" };
    fig[`n${size}_daemon_rss_mib`] = { value: round(rss, 1), unit: "MiB" };
    const row = `| ${size} | ${round(registered / 1000)} | ${round(allRoutes / 1000)} | ${round(fullSync / 1000)} | ${round(percentile(joins, 50))} / ${round(Math.max(...joins))} | ${round(rss, 1)} |`;
    rows.push(row);
    console.log(row);
  }
} finally {
  await lab.close();
}
const table = ["| nodes | register all (s) | registration start → all routes in the kernel (s) | daemon restart → all routes (s) | join → route p50 / max (ms) | daemon RSS (MiB) |", "|---|---|---|---|---|---|", ...rows].join("\n");
console.log(`\n${table}\n`);
writeResults("convergence", fig, { sizes: SIZES, joinsPerSize: JOINS });
writeSeries("convergence", series);
const last = SIZES[SIZES.length - 1]!;
updateDocSection(
  "convergence",
  [
    "## Convergence (`npm run bench:convergence`)",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)}: Node objects registered in the lab's real kube-apiserver (with pod CIDRs and VTEP MACs, as Twill nodes would have), watched by the daemon of one real lab node (vxlan backend); times are until that node's kernel holds the routes (polled every 25 ms). "Daemon restart" is kill -9, routes flushed, start: list + full reconcile. Join → route: one more Node created, until its route exists (${JOINS} joins per size). Goals: join → route < 1 s at 5,000 nodes; RSS < 200 MiB.`,
    "",
    table,
    "",
    barChart(`Join → route p50 (ms)`, "ms", SIZES.map((s) => ({ label: `${s} nodes`, value: fig[`n${s}_join_to_route_p50_ms`]!.value }))),
    "",
    barChart(`Daemon RSS (MiB)`, "MiB", SIZES.map((s) => ({ label: `${s} nodes`, value: fig[`n${s}_daemon_rss_mib`]!.value }))),
    "",
    `At ${last} nodes: join → route p50 ${fig[`n${last}_join_to_route_p50_ms`]!.value} ms, RSS ${fig[`n${last}_daemon_rss_mib`]!.value} MiB.`,
  ].join("\n"),
);
await plotBench("convergence");
process.exit(0);
