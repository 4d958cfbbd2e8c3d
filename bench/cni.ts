// npm run bench:cni — CNI ADD/DEL latency and CPU of Twill against two
// references in the same run: Debian's Go ptp + host-local (the same kind of
// routed veth), and Flannel's chain (the flannel plugin delegating to bridge +
// host-local, with the config kube-flannel installs). Every call is a real
// exec as a runtime makes it; bench/support/rusage-runner.ts runs them (under
// Bun, for wait4's rusage: the CPU of each call's whole process tree).
import { plotBench } from "./support/plot.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { exec } from "../lib/kernel/exec.ts";
import { addNetns, deleteNetns, execIn, netnsPath } from "../lib/kernel/netns.ts";
import { mean, percentile, round } from "./support/stats.ts";
import { barChart, REPO, updateDocSection, writeResults, type Figure } from "./support/report.ts";

const SEQUENTIAL = Number(process.env.BENCH_CNI_PODS ?? 200);
const PARALLEL = Number(process.env.BENCH_CNI_PARALLEL ?? 100);
/** Parallel bursts per plugin, interleaved: per-pod samples are pooled across them. */
const ROUNDS = Number(process.env.BENCH_CNI_ROUNDS ?? 3);
const tag = `bcn${process.pid.toString(36)}`;
const nodeNs = `${tag}-node`;
const work = mkdtempSync(join(tmpdir(), "twill-bench-cni-"));
const BUN = join(REPO, "node_modules/@oven/bun-linux-x64/bin/bun");

interface Variant {
  name: string;
  label: string;
  bin: string;
  conf: Record<string, unknown>;
}

const twill: Variant = {
  name: "twill",
  label: "Twill",
  bin: join(REPO, "dist/cni/twill"),
  conf: { cniVersion: "1.0.0", name: "bench", type: "twill", nodeFile: join(work, "node.json"), logFile: join(work, "twill.log"), ipam: { type: "twill-ipam", dataDir: join(work, "ipam-twill") } },
};
const goPtp: Variant = {
  name: "go",
  label: "Go ptp + host-local",
  bin: "/usr/lib/cni/ptp",
  conf: { cniVersion: "1.0.0", name: "bench", type: "ptp", ipMasq: false, mtu: 1450, ipam: { type: "host-local", ranges: [[{ subnet: "10.211.0.0/22" }]], dataDir: join(work, "ipam-go") } },
};
/** kube-flannel.yml's cni-conf.json (portmap left out, as Twill's is): flannel writes bridge + host-local's config from subnet.env. */
function flannel(bin: string): Variant {
  return {
    name: "flannel",
    label: "Flannel (flannel → bridge + host-local)",
    bin,
    conf: {
      cniVersion: "0.3.1",
      name: "cbr0",
      type: "flannel",
      subnetFile: join(work, "subnet.env"),
      dataDir: join(work, "flannel"),
      delegate: { hairpinMode: true, isDefaultGateway: true },
      ipam: { dataDir: join(work, "ipam-flannel") },
    },
  };
}

interface Sample {
  ms: number;
  cpuMs: number;
}

/** The Bun process that execs each call and reports wall time and the tree's CPU (wait4 rusage). */
class Runner {
  private readonly child: ChildProcess;
  private next = 1;
  private readonly waiting = new Map<number, (r: { code: number; stdout: string; wallMs: number; userMs: number; sysMs: number }) => void>();

  constructor() {
    this.child = spawn(BUN, [join(REPO, "bench/support/rusage-runner.ts")], { stdio: ["pipe", "pipe", "inherit"] });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const r = JSON.parse(line) as { id: number; code: number; stdout: string; wallMs: number; userMs: number; sysMs: number };
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
  }

  async call(v: Variant, command: string, containerId: string, netns: string): Promise<Sample & { code: number; out: string }> {
    const id = this.next++;
    const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin", CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: `${join(REPO, "dist/cni")}:/usr/lib/cni` };
    const r = await new Promise<{ code: number; stdout: string; wallMs: number; userMs: number; sysMs: number }>((resolve) => {
      this.waiting.set(id, resolve);
      // nsenter execs the plugin in place (no fork): its rusage is the plugin's.
      this.child.stdin!.write(JSON.stringify({ id, argv: ["nsenter", `--net=${netnsPath(nodeNs)}`, v.bin], env, input: JSON.stringify(v.conf) }) + "\n");
    });
    return { ms: r.wallMs, cpuMs: r.userMs + r.sysMs, code: r.code, out: r.stdout };
  }

  async must(v: Variant, command: string, containerId: string, netns: string): Promise<Sample> {
    const r = await this.call(v, command, containerId, netns);
    if (r.code !== 0) throw new Error(`${v.name} ${command} ${containerId} failed: ${r.out}`);
    return r;
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

const podName = (v: Variant, i: number) => `${tag}-${v.name.slice(0, 2)}${i}`;
const makePods = async (v: Variant, n: number) => {
  for (let i = 0; i < n; i++) await addNetns(podName(v, i));
};
const dropPods = async (v: Variant, n: number) => {
  for (let i = 0; i < n; i++) await deleteNetns(podName(v, i));
};

interface Result {
  add: Sample[];
  del: Sample[];
  par: Sample[];
  parWallMs: number[];
  startup: Sample[];
}

async function sequential(r: Runner, vs: Variant[], res: Map<string, Result>): Promise<void> {
  for (const v of vs) await makePods(v, SEQUENTIAL);
  // Interleaved, so that background load affects every plugin alike.
  for (let i = 0; i < SEQUENTIAL; i++) for (const v of vs) res.get(v.name)!.add.push(await r.must(v, "ADD", `seq${i}`, netnsPath(podName(v, i))));
  for (let i = 0; i < SEQUENTIAL; i++) for (const v of vs) res.get(v.name)!.del.push(await r.must(v, "DEL", `seq${i}`, netnsPath(podName(v, i))));
  for (const v of vs) await dropPods(v, SEQUENTIAL);
}

async function parallel(r: Runner, v: Variant, round: number, res: Result): Promise<void> {
  await makePods(v, PARALLEL);
  const t0 = performance.now();
  res.par.push(...(await Promise.all(Array.from({ length: PARALLEL }, (_, i) => r.must(v, "ADD", `par${round}-${i}`, netnsPath(podName(v, i)))))));
  res.parWallMs.push(performance.now() - t0);
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => r.must(v, "DEL", `par${round}-${i}`, netnsPath(podName(v, i)))));
  await dropPods(v, PARALLEL);
}

async function startup(r: Runner, vs: Variant[], res: Map<string, Result>, n = 60): Promise<void> {
  for (let i = 0; i < n; i++) for (const v of vs) res.get(v.name)!.startup.push(await r.call(v, "VERSION", "", ""));
}

/** Twill logs its own IPAM and kernel time per ADD. */
function twillPhases(logFile: string): { ipam: number; kernel: number } {
  const lines = existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n") : [];
  const adds = lines.map((l) => JSON.parse(l) as { ipamMs?: number; kernelMs?: number; containerId?: string }).filter((l) => l.ipamMs !== undefined && l.containerId?.startsWith("seq"));
  return { ipam: percentile(adds.map((a) => a.ipamMs!), 50), kernel: percentile(adds.map((a) => a.kernelMs!), 50) };
}

const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function main(): Promise<void> {
  const flannelBin = (await exec(["bash", join(REPO, "scripts/build-flannel.sh")])).stdout.trim();
  const variants = [twill, goPtp, flannel(flannelBin)];
  console.log(`bench:cni — ${SEQUENTIAL} sequential pods, ${ROUNDS}×${PARALLEL} parallel; ${variants.map((v) => v.label).join(" vs ")} (same run)`);
  const loadBefore = loadavg();
  await addNetns(nodeNs);
  await execIn(nodeNs, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  writeFileSync(join(work, "node.json"), JSON.stringify({ version: 1, nodeName: "bench", podCIDRs: ["10.210.0.0/22"], mtu: 1450, clusterCIDRs: ["10.210.0.0/16"] }));
  // What flanneld writes for a node with a /22 lease of 10.212.0.0/16 (VXLAN's MTU).
  writeFileSync(join(work, "subnet.env"), "FLANNEL_NETWORK=10.212.0.0/16\nFLANNEL_SUBNET=10.212.0.1/22\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
  const runner = new Runner();
  const res = new Map<string, Result>(variants.map((v) => [v.name, { add: [], del: [], par: [], parWallMs: [], startup: [] }]));
  try {
    await sequential(runner, variants, res);
    const phases = twillPhases(join(work, "twill.log"));
    for (let round = 0; round < ROUNDS; round++) for (const v of variants) await parallel(runner, v, round, res.get(v.name)!);
    await startup(runner, variants, res);
    const loadAfter = loadavg();

    const p = (s: Sample[], q: number, k: keyof Sample = "ms") => percentile(s.map((x) => x[k]), q);
    const fig: Record<string, Figure> = {};
    const put = (k: string, value: number, unit = "ms") => (fig[k] = { value: round(value), unit });
    for (const v of variants) {
      const r = res.get(v.name)!;
      // Twill's keys keep their names from earlier runs; the references' carry a prefix.
      const k = (s: string) => (v.name === "twill" ? s : `${v.name}_${s}`);
      put(k("add_p50_ms"), p(r.add, 50));
      put(k("add_p99_ms"), p(r.add, 99));
      put(k("del_p50_ms"), p(r.del, 50));
      put(k("del_p99_ms"), p(r.del, 99));
      put(k("add_cpu_p50_ms"), p(r.add, 50, "cpuMs"));
      put(k("add_cpu_mean_ms"), mean(r.add.map((x) => x.cpuMs)));
      put(k("del_cpu_p50_ms"), p(r.del, 50, "cpuMs"));
      put(k("parallel_per_pod_p50_ms"), p(r.par, 50));
      put(k("parallel_per_pod_p99_ms"), p(r.par, 99));
      put(k("parallel_cpu_per_add_mean_ms"), mean(r.par.map((x) => x.cpuMs)));
      put(k("parallel_wall_ms"), percentile(r.parWallMs, 50));
      put(k("startup_p50_ms"), p(r.startup, 50));
      put(k("startup_cpu_p50_ms"), p(r.startup, 50, "cpuMs"));
    }
    const ratio = (a: number, b: number) => round(a / b);
    const t = res.get("twill")!;
    for (const ref of ["go", "flannel"]) {
      const r = res.get(ref)!;
      fig[`add_p50_ratio_vs_${ref}`] = { value: ratio(p(t.add, 50), p(r.add, 50)), unit: "ratio" };
      fig[`add_p99_ratio_vs_${ref}`] = { value: ratio(p(t.add, 99), p(r.add, 99)), unit: "ratio" };
      fig[`del_p50_ratio_vs_${ref}`] = { value: ratio(p(t.del, 50), p(r.del, 50)), unit: "ratio" };
      fig[`parallel_p99_ratio_vs_${ref}`] = { value: ratio(p(t.par, 99), p(r.par, 99)), unit: "ratio" };
      fig[`add_cpu_p50_ratio_vs_${ref}`] = { value: ratio(p(t.add, 50, "cpuMs"), p(r.add, 50, "cpuMs")), unit: "ratio" };
      fig[`parallel_cpu_ratio_vs_${ref}`] = { value: ratio(mean(t.par.map((x) => x.cpuMs)), mean(r.par.map((x) => x.cpuMs))), unit: "ratio" };
    }
    put("add_ipam_p50_ms", phases.ipam);
    put("add_kernel_p50_ms", phases.kernel);

    const cell = (v: Variant, f: (r: Result) => string) => f(res.get(v.name)!);
    const rows: [string, (r: Result) => string, string][] = [
      ["ADD p50 / p99 (ms)", (r) => `${round(p(r.add, 50))} / ${round(p(r.add, 99))}`, "add_p50"],
      ["ADD CPU p50 / mean (ms, user+sys)", (r) => `${round(p(r.add, 50, "cpuMs"))} / ${round(mean(r.add.map((x) => x.cpuMs)))}`, "add_cpu_p50"],
      ["DEL p50 / p99 (ms)", (r) => `${round(p(r.del, 50))} / ${round(p(r.del, 99))}`, "del_p50"],
      ["DEL CPU p50 (ms)", (r) => `${round(p(r.del, 50, "cpuMs"))}`, ""],
      [`${PARALLEL} parallel ADDs, per-pod p50 / p99 (ms)`, (r) => `${round(p(r.par, 50))} / ${round(p(r.par, 99))}`, "parallel_p99"],
      [`${PARALLEL} parallel ADDs, CPU per ADD (ms, mean)`, (r) => `${round(mean(r.par.map((x) => x.cpuMs)))}`, "parallel_cpu"],
      [`${PARALLEL} parallel ADDs, wall (ms, median of ${ROUNDS})`, (r) => `${round(percentile(r.parWallMs, 50))}`, ""],
      ["process start (VERSION) p50 wall / CPU (ms)", (r) => `${round(p(r.startup, 50))} / ${round(p(r.startup, 50, "cpuMs"))}`, ""],
    ];
    const ratios = (key: string) => (key ? ["go", "flannel"].map((ref) => `${fig[`${key}_ratio_vs_${ref}`]!.value}×`).join(" / ") : "");
    const table = [
      `| figure | ${variants.map((v) => v.label).join(" | ")} | Twill ÷ Go / ÷ Flannel |`,
      `|---|${variants.map(() => "---|").join("")}---|`,
      ...rows.map(([label, f, key]) => `| ${label} | ${variants.map((v) => cell(v, f)).join(" | ")} | ${ratios(key)} |`),
    ].join("\n");
    console.log(`\n${table}\n`);
    const breakdown = `Inside Twill's ADD (p50, its own log): IPAM ${fig.add_ipam_p50_ms!.value} ms, kernel work ${fig.add_kernel_p50_ms!.value} ms (rtnetlink in-process, the pod's state read first); the rest of the ${fig.add_p50_ms!.value} ms is process start (${fig.startup_p50_ms!.value} ms for VERSION), loading the command's modules, nsenter and exit.`;
    console.log(breakdown);
    console.log(`load (1/5/15 min): before ${loadBefore}, after ${loadAfter}`);
    const resultsPath = writeResults("cni", fig, { sequentialPods: SEQUENTIAL, parallelPods: PARALLEL, parallelRounds: ROUNDS, cpus: (await exec(["nproc"])).stdout.trim(), loadavgBefore: loadBefore, loadavgAfter: loadAfter });
    const md = [
      "## CNI plugin (`npm run bench:cni`)",
      "",
      `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores, shared: load average ${loadBefore} before, ${loadAfter} after), ${SEQUENTIAL} sequential pods (the three plugins interleaved) and ${ROUNDS} bursts of ${PARALLEL} parallel ADDs per plugin (interleaved, per-pod samples pooled). Every call is a real exec as a runtime makes it (environment + stdin, \`nsenter\` into the node namespace, which execs the plugin in place). CPU is user + system of the call's whole process tree (wait4's rusage: the plugin and every IPAM or delegate plugin it ran). References in the same run: Debian's Go \`ptp\` + \`host-local\` (containernetworking-plugins 1.1.1, routed veth like Twill's), and Flannel's chain: the \`flannel\` plugin (containernetworking/plugins v0.9.1's plugins/meta/flannel, built from the Go module proxy: \`github.com/flannel-io/cni-plugin\` is not served there) with kube-flannel's config, delegating to Debian's \`bridge\` + \`host-local\`. Goals against Go: ADD p50, per-pod p99 at ${PARALLEL} parallel and CPU per ADD each ≤ 1.0×, and below Flannel's on all three.`,
      "",
      table,
      "",
      breakdown,
      "",
      barChart("CNI ADD latency p50 (ms)", "ms", variants.map((v) => ({ label: v.label, value: fig[v.name === "twill" ? "add_p50_ms" : `${v.name}_add_p50_ms`]!.value }))),
      "",
      barChart("CPU per ADD, p50 (ms, user+sys of the process tree)", "ms", variants.map((v) => ({ label: v.label, value: fig[v.name === "twill" ? "add_cpu_p50_ms" : `${v.name}_add_cpu_p50_ms`]!.value }))),
      "",
      barChart(`Per-pod ADD latency at ${PARALLEL} parallel, p99 (ms)`, "ms", variants.map((v) => ({ label: v.label, value: fig[v.name === "twill" ? "parallel_per_pod_p99_ms" : `${v.name}_parallel_per_pod_p99_ms`]!.value }))),
    ].join("\n");
    updateDocSection("cni", md);
    console.log(`results: ${resultsPath}, docs/benchmarks.md`);
  } finally {
    runner.stop();
    for (const v of variants) for (let i = 0; i < Math.max(SEQUENTIAL, PARALLEL); i++) await deleteNetns(podName(v, i));
    await deleteNetns(nodeNs);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
await plotBench("cni");
