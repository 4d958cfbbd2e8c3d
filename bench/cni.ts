// npm run bench:cni — CNI ADD/DEL latency of Twill against Debian's Go
// reference plugins (ptp + host-local) on the same kind of config, in the same
// run. (Why the plugin is a Bun binary and not a Node single-executable:
// docs/cni.md, measured when the choice was made.)
import { plotBench } from "./support/plot.ts";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec } from "../lib/kernel/exec.ts";
import { addNetns, deleteNetns, execIn, netnsPath } from "../lib/kernel/netns.ts";
import { mean, percentile, round } from "./support/stats.ts";
import { barChart, REPO, updateDocSection, writeResults, type Figure } from "./support/report.ts";

const SEQUENTIAL = Number(process.env.BENCH_CNI_PODS ?? 200);
const PARALLEL = Number(process.env.BENCH_CNI_PARALLEL ?? 100);
const tag = `bcn${process.pid.toString(36)}`;
const nodeNs = `${tag}-node`;
const work = mkdtempSync(join(tmpdir(), "twill-bench-cni-"));

interface Variant {
  name: string;
  bin: string;
  conf: Record<string, unknown>;
}

function twillConf(dataDir: string): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: "bench",
    type: "twill",
    nodeFile: join(work, "node.json"),
    logFile: join(work, `${dataDir}.log`),
    ipam: { type: "twill-ipam", dataDir: join(work, dataDir) },
  };
}

const variants: Variant[] = [
  { name: "twill", bin: join(REPO, "dist/cni/twill"), conf: twillConf("ipam-twill") },
  {
    name: "go-ptp",
    bin: "/usr/lib/cni/ptp",
    conf: {
      cniVersion: "1.0.0",
      name: "bench",
      type: "ptp",
      ipMasq: false,
      mtu: 1450,
      ipam: { type: "host-local", ranges: [[{ subnet: "10.211.0.0/22" }]], dataDir: join(work, "ipam-go") },
    },
  },
];

function run(bin: string, command: string, containerId: string, netns: string, conf: object): Promise<{ ms: number; code: number; out: string }> {
  const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin", CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: `${join(REPO, "dist/cni")}:/usr/lib/cni` };
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("nsenter", [`--net=${netnsPath(nodeNs)}`, bin], { env, stdio: ["pipe", "pipe", "ignore"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ ms: performance.now() - t0, code: code ?? 1, out }));
    child.stdin.end(JSON.stringify(conf));
  });
}

async function must(p: Promise<{ ms: number; code: number; out: string }>, what: string): Promise<number> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.out}`);
  return r.ms;
}

const podName = (v: string, i: number) => `${tag}-${v.slice(0, 2)}${i}`;

async function makePods(v: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await addNetns(podName(v, i));
}
async function dropPods(v: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await deleteNetns(podName(v, i));
}

interface Lat {
  add: number[];
  del: number[];
}

async function sequential(vs: Variant[], n: number): Promise<Map<string, Lat>> {
  const lat = new Map(vs.map((v) => [v.name, { add: [] as number[], del: [] as number[] }]));
  for (const v of vs) await makePods(v.name, n);
  // Interleaved, so that background load affects every variant alike.
  for (let i = 0; i < n; i++) {
    for (const v of vs) lat.get(v.name)!.add.push(await must(run(v.bin, "ADD", `seq${i}`, netnsPath(podName(v.name, i)), v.conf), `${v.name} ADD`));
  }
  for (let i = 0; i < n; i++) {
    for (const v of vs) lat.get(v.name)!.del.push(await must(run(v.bin, "DEL", `seq${i}`, netnsPath(podName(v.name, i)), v.conf), `${v.name} DEL`));
  }
  for (const v of vs) await dropPods(v.name, n);
  return lat;
}

async function parallel(v: Variant, n: number): Promise<{ perPod: number[]; wallMs: number }> {
  await makePods(v.name, n);
  const t0 = performance.now();
  const perPod = await Promise.all(Array.from({ length: n }, (_, i) => must(run(v.bin, "ADD", `par${i}`, netnsPath(podName(v.name, i)), v.conf), `${v.name} parallel ADD`)));
  const wallMs = performance.now() - t0;
  await Promise.all(Array.from({ length: n }, (_, i) => must(run(v.bin, "DEL", `par${i}`, netnsPath(podName(v.name, i)), v.conf), `${v.name} parallel DEL`)));
  await dropPods(v.name, n);
  return { perPod, wallMs };
}

async function startupMs(bin: string, n = 40): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) samples.push((await run(bin, "VERSION", "", "", { cniVersion: "1.0.0" })).ms);
  return percentile(samples, 50);
}

/** Twill logs its own IPAM and kernel time per ADD. */
function twillPhases(logFile: string): { ipam: number; kernel: number } {
  const lines = existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n") : [];
  const adds = lines.map((l) => JSON.parse(l) as { ipamMs?: number; kernelMs?: number }).filter((l) => l.ipamMs !== undefined);
  return { ipam: percentile(adds.map((a) => a.ipamMs!), 50), kernel: percentile(adds.map((a) => a.kernelMs!), 50) };
}

async function main(): Promise<void> {
  console.log(`bench:cni — ${SEQUENTIAL} sequential pods, ${PARALLEL} parallel, Twill vs Go ptp+host-local (same run)`);
  await addNetns(nodeNs);
  await execIn(nodeNs, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  writeFileSync(join(work, "node.json"), JSON.stringify({ version: 1, nodeName: "bench", podCIDRs: ["10.210.0.0/22"], mtu: 1450, clusterCIDRs: ["10.210.0.0/16"] }));
  try {
    const seq = await sequential(variants, SEQUENTIAL);
    // Phases from the sequential run only, before parallel runs contend for the CPU.
    const phases = twillPhases(join(work, "ipam-twill.log"));
    const par = new Map<string, { perPod: number[]; wallMs: number }>();
    for (const v of variants) par.set(v.name, await parallel(v, PARALLEL));
    const start = { twill: await startupMs(variants[0]!.bin), go: await startupMs(variants[1]!.bin) };

    const t = seq.get("twill")!;
    const g = seq.get("go-ptp")!;
    const tp = par.get("twill")!;
    const gp = par.get("go-ptp")!;
    const fig: Record<string, Figure> = {
      add_p50_ms: { value: round(percentile(t.add, 50)), unit: "ms" },
      add_p99_ms: { value: round(percentile(t.add, 99)), unit: "ms" },
      del_p50_ms: { value: round(percentile(t.del, 50)), unit: "ms" },
      del_p99_ms: { value: round(percentile(t.del, 99)), unit: "ms" },
      go_add_p50_ms: { value: round(percentile(g.add, 50)), unit: "ms" },
      go_add_p99_ms: { value: round(percentile(g.add, 99)), unit: "ms" },
      go_del_p50_ms: { value: round(percentile(g.del, 50)), unit: "ms" },
      go_del_p99_ms: { value: round(percentile(g.del, 99)), unit: "ms" },
      add_p50_ratio_vs_go: { value: round(percentile(t.add, 50) / percentile(g.add, 50)), unit: "ratio" },
      add_p99_ratio_vs_go: { value: round(percentile(t.add, 99) / percentile(g.add, 99)), unit: "ratio" },
      del_p50_ratio_vs_go: { value: round(percentile(t.del, 50) / percentile(g.del, 50)), unit: "ratio" },
      parallel_per_pod_p50_ms: { value: round(percentile(tp.perPod, 50)), unit: "ms" },
      parallel_per_pod_p99_ms: { value: round(percentile(tp.perPod, 99)), unit: "ms" },
      parallel_wall_ms: { value: round(tp.wallMs), unit: "ms" },
      go_parallel_per_pod_p50_ms: { value: round(percentile(gp.perPod, 50)), unit: "ms" },
      go_parallel_per_pod_p99_ms: { value: round(percentile(gp.perPod, 99)), unit: "ms" },
      go_parallel_wall_ms: { value: round(gp.wallMs), unit: "ms" },
      parallel_p99_ratio_vs_go: { value: round(percentile(tp.perPod, 99) / percentile(gp.perPod, 99)), unit: "ratio" },
      startup_p50_ms: { value: round(start.twill), unit: "ms" },
      go_startup_p50_ms: { value: round(start.go), unit: "ms" },
      add_ipam_p50_ms: { value: round(phases.ipam), unit: "ms" },
      add_kernel_p50_ms: { value: round(phases.kernel), unit: "ms" },
    };
    const rows: [string, string, string, string][] = [
      ["ADD p50 / p99 (ms)", `${fig.add_p50_ms!.value} / ${fig.add_p99_ms!.value}`, `${fig.go_add_p50_ms!.value} / ${fig.go_add_p99_ms!.value}`, `${fig.add_p50_ratio_vs_go!.value}× / ${fig.add_p99_ratio_vs_go!.value}×`],
      ["DEL p50 / p99 (ms)", `${fig.del_p50_ms!.value} / ${fig.del_p99_ms!.value}`, `${fig.go_del_p50_ms!.value} / ${fig.go_del_p99_ms!.value}`, `${fig.del_p50_ratio_vs_go!.value}×`],
      [`${PARALLEL} parallel ADDs, per-pod p50 / p99 (ms)`, `${fig.parallel_per_pod_p50_ms!.value} / ${fig.parallel_per_pod_p99_ms!.value}`, `${fig.go_parallel_per_pod_p50_ms!.value} / ${fig.go_parallel_per_pod_p99_ms!.value}`, `${fig.parallel_p99_ratio_vs_go!.value}× (p99)`],
      [`${PARALLEL} parallel ADDs, wall (ms)`, `${fig.parallel_wall_ms!.value}`, `${fig.go_parallel_wall_ms!.value}`, `${round(tp.wallMs / gp.wallMs)}×`],
      ["process start (VERSION) p50 (ms)", `${fig.startup_p50_ms!.value}`, `${fig.go_startup_p50_ms!.value}`, `${round(start.twill / start.go)}×`],
    ];
    const table = ["| figure | Twill | Go ptp + host-local | ratio |", "|---|---|---|---|", ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
    console.log(`\n${table}\n`);
    const breakdown = `Where Twill's ADD time goes (p50): process start ${fig.startup_p50_ms!.value} ms (Bun runtime, bytecode), IPAM ${fig.add_ipam_p50_ms!.value} ms, kernel work ${fig.add_kernel_p50_ms!.value} ms (rtnetlink, in-process), the rest (config, exit) ${round(fig.add_p50_ms!.value - fig.startup_p50_ms!.value - fig.add_ipam_p50_ms!.value - fig.add_kernel_p50_ms!.value)} ms.`;
    console.log(breakdown);
    const resultsPath = writeResults("cni", fig, { sequentialPods: SEQUENTIAL, parallelPods: PARALLEL, cpus: (await exec(["nproc"])).stdout.trim() });
    const md = [
      "## CNI plugin (`npm run bench:cni`)",
      "",
      `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores), ${SEQUENTIAL} sequential pods (interleaved with the reference) and ${PARALLEL} parallel ADDs. Every call is a real exec, as a runtime makes it (environment + stdin, \`nsenter\` into the node namespace). Reference: Debian's Go \`ptp\` + \`host-local\` (containernetworking-plugins 1.1.1), same kind of config (routed veth, /32 per pod). Goals: ADD p50 ≤ 1.5× the Go reference; per-pod p99 at 100 parallel < 300 ms.`,
      "",
      table,
      "",
      breakdown,
      "",
      barChart("CNI ADD latency p50 (ms)", "ms", [
        { label: "Twill", value: fig.add_p50_ms!.value },
        { label: "Go ptp+host-local", value: fig.go_add_p50_ms!.value },
      ]),
      "",
      barChart(`Per-pod ADD latency at ${PARALLEL} parallel, p99 (ms)`, "ms", [
        { label: "Twill", value: fig.parallel_per_pod_p99_ms!.value },
        { label: "Go ptp+host-local", value: fig.go_parallel_per_pod_p99_ms!.value },
      ]),
    ].join("\n");
    updateDocSection("cni", md);
    console.log(`results: ${resultsPath}, docs/benchmarks.md`);
  } finally {
    for (const v of variants.map((x) => x.name)) {
      for (let i = 0; i < Math.max(SEQUENTIAL, PARALLEL); i++) await deleteNetns(podName(v, i));
    }
    await deleteNetns(nodeNs);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
await plotBench("cni");
