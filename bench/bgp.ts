// npm run bench:bgp — how fast Twill's BGP speaker takes a full feed, next to
// BIRD on the same feed in the same run. A BIRD feeder (10.77.0.1) announces
// N prefixes over iBGP to two receivers on one veth LAN of namespaces: Twill
// (the bgp backend with the daemon's reconcile, 10.77.0.2) and BIRD with its
// kernel protocol (10.77.0.3). Measured from the feeder's start: all N in the
// receiver's RIB, all N in its kernel; CPU time (with children) and peak RSS
// of each receiver (Twill writes routes over rtnetlink from its own process).
// Nothing polls the kernel's table during the run (listing 100k routes costs a core): Twill
// reports each finished reconcile, BIRD's kernel protocol its export count;
// both kernels are counted once at the end to check.
import { plotBench } from "./support/plot.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execIn } from "../lib/kernel/netns.ts";
import { createLan, waitFor, type Lan } from "../test/bgp/support/lan.ts";
import { barChart, REPO, updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { round } from "./support/stats.ts";

const SIZES = (process.env.BENCH_BGP_SIZES ?? "10000,100000").split(",").map(Number);
const POLL_MS = 250;
const TICKS = 100; // USER_HZ

const prefixOf = (i: number) => {
  const v = (11 << 24) + i * 256;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.0/24`;
};

function birdConf(dir: string, routerId: string, neighbours: string[], opts: { statics?: number; kernel?: boolean }): string {
  const path = join(dir, `bird-${routerId}.conf`);
  const statics = Array.from({ length: opts.statics ?? 0 }, (_, i) => `  route ${prefixOf(i)} blackhole;`).join("\n");
  writeFileSync(path, `
router id ${routerId};
timeformat protocol iso long ms;
protocol device {}
${opts.statics ? `protocol static feed { ipv4; \n${statics}\n}` : ""}
${opts.kernel ? "protocol kernel { ipv4 { import none; export all; }; }" : ""}
${neighbours.map((n, i) => `protocol bgp p${i} { local as 64512; neighbor ${n} as 64512; direct; hold time 90; connect retry time 1; ${opts.statics ? "rr client; disabled;" : ""} ipv4 { import all; export all; }; }`).join("\n")}
`);
  return path;
}

function startBird(ns: string, dir: string, conf: string, name: string): ChildProcess {
  return spawn("ip", ["netns", "exec", ns, "bird", "-f", "-c", conf, "-s", join(dir, `${name}.ctl`), "-P", join(dir, `${name}.pid`)], { stdio: "ignore" });
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
  // utime, stime, cutime, cstime are fields 14-17 (1-based) of stat, i.e. 11-14 after the command name.
  return [11, 12, 13, 14].reduce((s, i) => s + Number(fields[i]), 0) / TICKS;
}

function rssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function kernelCount(ns: string, proto: string): Promise<number> {
  const out = (await execIn(ns, ["ip", "-4", "route", "show", "proto", proto])).stdout;
  return out ? out.trim().split("\n").length : 0;
}

interface Result {
  /** When the receiver's session with the feeder came up. */
  up: number;
  rib: number;
  kernel: number;
  cpu: number;
  rss: number;
}

async function runSize(n: number): Promise<{ twill: Result; bird: Result }> {
  const lan: Lan = await createLan(3);
  const procs: ChildProcess[] = [];
  try {
    // Receivers first, so both are listening when the feeder starts.
    const spec = join(lan.dir, "twill.json");
    writeFileSync(spec, JSON.stringify({
      self: "twill",
      nodes: [
        { name: "twill", ip: "10.77.0.2", podCIDRs: ["10.244.2.0/24"], annotations: {} },
        { name: "feeder", ip: "10.77.0.1", podCIDRs: ["10.244.1.0/24"], annotations: {} },
      ],
    }));
    const twill = spawn("ip", ["netns", "exec", lan.ns(2), process.execPath, join(REPO, "test/bgp/support/backend-runner.ts"), spec], {
      stdio: ["ignore", "pipe", process.env.BENCH_DEBUG ? "inherit" : "ignore"], env: { ...process.env, TWILL_BGP_REPORT: "1", TWILL_LOG_LEVEL: "warn" },
    });
    procs.push(twill);
    let twillRibAt = 0;
    let twillUpAt = 0;
    let twillKernelAt = 0;
    createInterface({ input: twill.stdout! }).on("line", (line) => {
      const ev = JSON.parse(line) as { event: string; size?: number; at?: number; state?: string; routes?: number };
      // A reconcile that finished with the feed and its own blackhole in the desired set.
      if (ev.event === "reconciled" && (ev.routes ?? 0) >= n + 1 && !twillKernelAt) twillKernelAt = ev.at!;
      if (ev.event === "peer" && ev.state === "established" && !twillUpAt) twillUpAt = ev.at!;
      // The feed plus the feeder's own pod CIDR.
      if (ev.event === "rib" && (ev.size ?? 0) >= n + 1 && !twillRibAt) twillRibAt = ev.at!;
    });
    const bird = startBird(lan.ns(3), lan.dir, birdConf(lan.dir, "10.77.0.3", ["10.77.0.1"], { kernel: true }), "receiver");
    procs.push(bird);
    await new Promise((r) => setTimeout(r, 1500));

    // The feeder loads its table with its BGP sessions disabled, then enables both at once:
    // the clock starts with a full feeder, for both receivers alike.
    procs.push(startBird(lan.ns(1), lan.dir, birdConf(lan.dir, "10.77.0.1", ["10.77.0.2", "10.77.0.3"], { statics: n }), "feeder"));
    const feeder = async (...args: string[]) => (await execIn(lan.ns(1), ["birdc", "-s", join(lan.dir, "feeder.ctl"), ...args], { allowFailure: true })).stdout;
    await waitFor("the feeder's table", async () => {
      const m = /(\d+) of \d+ routes/.exec(await feeder("show", "route", "count"));
      return m && Number(m[1]) >= n ? true : undefined;
    }, 300_000);
    const t0 = Date.now();
    await feeder("enable", "p0");
    await feeder("enable", "p1");
    let birdRibAt = 0;
    let birdKernelAt = 0;
    const birdc = async (...args: string[]) => (await execIn(lan.ns(3), ["birdc", "-s", join(lan.dir, "receiver.ctl"), ...args], { allowFailure: true })).stdout;
    await waitFor(`all ${n} prefixes everywhere`, async () => {
      const now = Date.now();
      if (!birdRibAt) {
        const m = /(\d+) of \d+ routes/.exec(await birdc("show", "route", "count"));
        if (m && Number(m[1]) >= n) birdRibAt = now;
      }
      if (!birdKernelAt) {
        // The kernel protocol writes over netlink synchronously; its export count is what the kernel took.
        const m = /(\d+) exported/.exec(await birdc("show", "protocols", "all", "kernel1"));
        if (m && Number(m[1]) >= n) birdKernelAt = Date.now();
      }
      if (process.env.BENCH_DEBUG) process.stderr.write(`${JSON.stringify({ birdRibAt, birdKernelAt, twillKernelAt, twillRibAt })}\n`);
      await new Promise((r) => setTimeout(r, POLL_MS));
      return birdRibAt && birdKernelAt && twillKernelAt && twillRibAt ? true : undefined;
    }, 600_000);
    // Check, once, that the kernels really hold what the reports said.
    const [tk, bk] = [await kernelCount(lan.ns(2), "211"), await kernelCount(lan.ns(3), "bird")];
    if (tk < n + 1 || bk < n) throw new Error(`kernel check failed: Twill has ${tk} routes, BIRD ${bk}, want ${n}`);
    // When BIRD's session came up (the namespaces share the machine's UTC clock).
    const since = /(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\s+Established/.exec(await birdc("show", "protocols", "p0"));
    const birdUpAt = since ? Date.parse(`${since[1]!.replace(" ", "T")}Z`) : Number.NaN;
    const birdPid = Number(readFileSync(join(lan.dir, "receiver.pid"), "utf8"));
    const s = (t: number) => round((t - t0) / 1000);
    return {
      twill: { up: s(twillUpAt), rib: s(twillRibAt), kernel: s(twillKernelAt), cpu: round(cpuSeconds(twill.pid!)), rss: round(rssMiB(twill.pid!), 1) },
      bird: { up: s(birdUpAt), rib: s(birdRibAt), kernel: s(birdKernelAt), cpu: round(cpuSeconds(birdPid)), rss: round(rssMiB(birdPid), 1) },
    };
  } finally {
    for (const p of procs) p.kill("SIGKILL");
    await lan.close();
  }
}

const figures: Record<string, Figure> = {};
const rows: string[] = [];
// The machine is shared: its load around each size says how contended these figures are.
const loads: string[] = [];
const ratios: { label: string; value: number }[] = [];
for (const n of SIZES) {
  process.stderr.write(`[bench:bgp] ${n} prefixes…\n`);
  const loadBefore = loadavg()[0]!.toFixed(1);
  const { twill, bird } = await runSize(n);
  loads.push(`${n}: ${loadBefore} before, ${loadavg()[0]!.toFixed(1)} after`);
  for (const [who, r] of [["twill", twill], ["bird", bird]] as const) {
    figures[`${who}.${n}.rib`] = { value: r.rib, unit: "s" };
    figures[`${who}.${n}.kernel`] = { value: r.kernel, unit: "s" };
    figures[`${who}.${n}.cpu`] = { value: r.cpu, unit: "s" };
    figures[`${who}.${n}.rss`] = { value: r.rss, unit: "MiB" };
  }
  // Session set-up differs by implementation (connect retry, BIRD's start delay): the ratio is taken from session up.
  const fromUp = (r: Result, t: number) => round(t - r.up);
  const ratio = round(fromUp(twill, twill.kernel) / fromUp(bird, bird.kernel));
  figures[`ratio.${n}.kernel`] = { value: ratio, unit: "×" };
  ratios.push({ label: `${n} prefixes`, value: ratio });
  rows.push(`| ${n} | ${twill.up} / ${bird.up} | ${fromUp(twill, twill.rib)} / ${fromUp(bird, bird.rib)} | ${fromUp(twill, twill.kernel)} / ${fromUp(bird, bird.kernel)} | ${ratio}× | ${twill.cpu} / ${bird.cpu} | ${twill.rss} / ${bird.rss} |`);
  process.stderr.write(`[bench:bgp] ${n}: twill ${JSON.stringify(twill)} bird ${JSON.stringify(bird)}\n`);
}
const path = writeResults("bgp", figures, { sizes: SIZES, pollMs: POLL_MS, loadAvg1m: loads });
updateDocSection("bgp", `
## BGP feed (\`npm run bench:bgp\`)

Measured ${new Date().toISOString().slice(0, 10)}: a BIRD feeder announces N /24s over iBGP on a veth LAN of namespaces to Twill (bgp backend + the daemon's reconcile) and to BIRD (kernel protocol), in the same run. The feeder loads its table first, then enables both sessions at once; session set-up times are from that moment, the others from each receiver's own session coming up (RIB and kernel reports polled every ${POLL_MS} ms: Twill's finished reconciles, BIRD's \`show route count\` and kernel-protocol export count; both kernels counted at the end); CPU is user+system including children (Twill writes routes over rtnetlink from its own process; \`ip\` only for its few devices); RSS is the peak. Goal: Twill ≤ 1.5× BIRD's time.

| prefixes | session up after the feeder enables it (s) Twill / BIRD | session up → all in the RIB (s) Twill / BIRD | session up → all in the kernel (s) Twill / BIRD | Twill ÷ BIRD (kernel) | CPU (s) Twill / BIRD | peak RSS (MiB) Twill / BIRD |
|---|---|---|---|---|---|---|
${rows.join("\n")}

1-minute load average of this 2-core, shared machine around each size: ${loads.join("; ")}.

${barChart("Twill ÷ BIRD, time to all routes in the kernel", "ratio", ratios)}
`);
process.stderr.write(`[bench:bgp] results in ${path}\n`);
await plotBench("bgp");
