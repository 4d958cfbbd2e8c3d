// npm run bench:bgp — Twill's BGP speaker (the bgp backend with the daemon's
// reconcile) against BIRD 2 (kernel protocol) taking the same feed, measured
// the same way. A BIRD feeder (10.77.0.1) loads N /24s (11.0.0.0 up) into its
// table with its sessions disabled; then, one receiver at a time, in
// alternating order over several runs:
//   - the receiver starts and settles: its RSS now is its base (no routes);
//   - the feeder enables that receiver's session;
//   - time to kernel: from the first UPDATE the receiver's namespace sees on
//     the wire (tcpdump) to the last of the N routes in its kernel table,
//     counted from rtnetlink route events in that namespace (route-monitor.py,
//     at real-time priority), never by polling the table;
//   - CPU seconds (user+system, children included) and RSS, peak (VmHWM)
//     and settled (VmRSS a few seconds after the last route);
//   - withdraw: the feeder disables the session; time until the kernel
//     holds none of the N.
// Per prefix: memory (settled RSS − base RSS) / N, CPU seconds / N.
// Medians over the runs with a distribution-free 95 % interval; Twill ÷ BIRD
// from the medians of the same run.
import { plotBench } from "./support/plot.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execIn } from "../lib/kernel/netns.ts";
import { createLan, waitFor, type Lan } from "../test/bgp/support/lan.ts";
import { barChart, REPO, updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { median, medianInterval, round } from "./support/stats.ts";

const SIZES = (process.env.BENCH_BGP_SIZES ?? "1000,10000,100000,1000000").split(",").map(Number);
const RUNS = Number(process.env.BENCH_BGP_RUNS ?? 6);
/** 1M prefixes take a minute a run: fewer runs there (the interval is then the range). */
const runsFor = (n: number) => (n >= 1_000_000 ? Number(process.env.BENCH_BGP_RUNS_1M ?? 2) : RUNS);
const SETTLE_MS = 8000;
const TICKS = 100; // USER_HZ
const FEED_FROM = "11.0.0.0";
const RTPROT = { twill: 211, bird: 12 } as const;
type Who = keyof typeof RTPROT;

/** The Node flags the DaemonSet runs the daemon with (heap limits): Twill is measured as it runs there. */
const DAEMON_NODE_FLAGS = (() => {
  const line = readFileSync(join(REPO, "manifests/twill.yaml"), "utf8").split("\n").find((l) => l.includes("command:") && l.includes("/opt/twill/daemon/main.ts"));
  return (line ?? "").split(/[[\],\s]+/).filter((w) => w.startsWith("--max-"));
})();

const prefixOf = (i: number) => {
  const v = (11 << 24) + i * 256;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.0/24`;
};

function writeConf(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

function feederConf(dir: string, n: number, runs: number): string {
  const statics: string[] = [];
  for (let i = 0; i < n; i++) statics.push(`  route ${prefixOf(i)} blackhole;`);
  const peer = (name: string, addr: string) =>
    `protocol bgp ${name} { local as 64512; neighbor ${addr} as 64512; direct; hold time 90; connect retry time 1; rr client; disabled; ipv4 { import none; export all; }; }`;
  // A session of its own for every run: a BIRD protocol enabled a second time sent its first UPDATE ~3 s
  // before the rest, one run in two, for either receiver.
  const sessions: string[] = [];
  for (let r = 0; r < runs; r++) sessions.push(peer(`to_twill_${r}`, "10.77.0.2"), peer(`to_bird_${r}`, "10.77.0.3"));
  return writeConf(join(dir, "feeder.conf"), `router id 10.77.0.1;\nprotocol device {}\nprotocol static feed { ipv4;\n${statics.join("\n")}\n}\n${sessions.join("\n")}\n`);
}

function receiverConf(dir: string): string {
  return writeConf(join(dir, "receiver.conf"), `router id 10.77.0.3;
protocol device {}
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp feeder { local as 64512; neighbor 10.77.0.1 as 64512; direct; hold time 90; connect retry time 1; ipv4 { import all; export none; }; }
`);
}

function startBird(ns: string, dir: string, conf: string, name: string): ChildProcess {
  return spawn("ip", ["netns", "exec", ns, "bird", "-f", "-c", conf, "-s", join(dir, `${name}.ctl`), "-P", join(dir, `${name}.pid`)], { stdio: "ignore" });
}

const birdc = async (ns: string, dir: string, name: string, ...args: string[]) =>
  (await execIn(ns, ["birdc", "-s", join(dir, `${name}.ctl`), ...args], { allowFailure: true })).stdout;

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
  // utime, stime, cutime, cstime are fields 14-17 (1-based) of stat, i.e. 11-14 after the command name.
  return [11, 12, 13, 14].reduce((s, i) => s + Number(fields[i]), 0) / TICKS;
}

function memory(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** JSON lines from a child's stdout, with a way to wait for the next line matching a test. */
function lines(child: ChildProcess) {
  const seen: Record<string, unknown>[] = [];
  const waiters: { test: (o: Record<string, unknown>) => boolean; resolve: (o: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    seen.push(o);
    for (const w of [...waiters]) if (w.test(o)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(o));
  });
  return {
    seen,
    next(what: string, test: (o: Record<string, unknown>) => boolean, limitMs: number, from = 0): Promise<Record<string, unknown>> {
      const found = seen.slice(from).find(test);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), limitMs);
        waiters.push({ test, resolve: (o) => (clearTimeout(timer), resolve(o)) });
      });
    },
  };
}

/** The kernel's route events in `ns`: resolves "full" when N of the feed are in, "empty" when none are. */
async function startMonitor(ns: string, proto: number, n: number) {
  const child = spawn("ip", ["netns", "exec", ns, "chrt", "-f", "50", "python3", join(REPO, "bench/support/route-monitor.py"), String(proto), String(n), FEED_FROM], { stdio: ["ignore", "pipe", "inherit"] });
  const l = lines(child);
  await l.next("the route monitor", (o) => o.event === "ready", 60_000);
  return { child, l };
}

/** The first segment the feeder sends with more than an OPEN and KEEPALIVE in it: the first UPDATE, stamped by the kernel. */
async function startFirstUpdate(ns: string): Promise<{ child: ChildProcess; at: Promise<number> }> {
  const filter = "src host 10.77.0.1 and tcp port 179 and (ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2)) > 150";
  const child = spawn("ip", ["netns", "exec", ns, "tcpdump", "-i", "eth0", "-n", "-tt", "-l", "-c", "1", "-Q", "in", filter], { stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      if (err.includes("listening on")) resolve();
    });
    child.on("exit", () => reject(new Error(`tcpdump in ${ns} exited: ${err.trim()}`)));
  });
  const at = new Promise<number>((resolve) => {
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(Number(line.split(" ")[0]) * 1000));
  });
  return { child, at };
}

interface Sample {
  /** Twill closed the session at its node-wide prefix limit (memory-guard.ts) before taking all N: how many it held then. */
  stoppedAt?: number;
  kernel: number;
  withdraw: number;
  cpu: number;
  base: number;
  settled: number;
  peak: number;
}

type Lines = ReturnType<typeof lines>;

async function startReceiver(who: Who, lan: Lan): Promise<{ pid: number; events?: Lines; stop: () => Promise<void> }> {
  if (who === "twill") {
    const spec = join(lan.dir, "twill.json");
    writeFileSync(spec, JSON.stringify({
      self: "twill",
      nodes: [
        { name: "twill", ip: "10.77.0.2", podCIDRs: ["10.244.2.0/24"], annotations: {} },
        { name: "feeder", ip: "10.77.0.1", podCIDRs: ["10.244.1.0/24"], annotations: {} },
      ],
    }));
    const child = spawn("ip", ["netns", "exec", lan.ns(2), process.execPath, ...DAEMON_NODE_FLAGS, join(REPO, "test/bgp/support/backend-runner.ts"), spec], {
      stdio: ["ignore", "pipe", process.env.BENCH_DEBUG ? "inherit" : "ignore"],
      // The daemon's default resync period.
      env: { ...process.env, TWILL_LOG_LEVEL: "warn", TWILL_RESYNC_MS: "10000", TWILL_BGP_REPORT: "1" },
    });
    const events = lines(child);
    await events.next("Twill's first reconcile", (o) => o.event === "reconciled", 60_000);
    return {
      pid: child.pid!,
      events,
      stop: async () => {
        child.kill("SIGKILL");
        // Its own blackhole stays behind, and would make the next run a graceful restart.
        await execIn(lan.ns(2), ["ip", "route", "flush", "proto", "211"], { allowFailure: true });
      },
    };
  }
  const child = startBird(lan.ns(3), lan.dir, receiverConf(lan.dir), "receiver");
  await waitFor("the BIRD receiver", async () => ((await birdc(lan.ns(3), lan.dir, "receiver", "show", "status")).includes("Daemon is up") ? true : undefined), 30_000);
  const pid = Number(readFileSync(join(lan.dir, "receiver.pid"), "utf8"));
  return {
    pid,
    stop: async () => {
      child.kill("SIGKILL");
      process.kill(pid, "SIGKILL");
      await execIn(lan.ns(3), ["ip", "route", "flush", "proto", "bird"], { allowFailure: true });
    },
  };
}

async function runOnce(who: Who, lan: Lan, n: number, run: number): Promise<Sample> {
  const ns = who === "twill" ? lan.ns(2) : lan.ns(3);
  const feeder = (...a: string[]) => birdc(lan.ns(1), lan.dir, "feeder", ...a);
  const receiver = await startReceiver(who, lan);
  const monitor = await startMonitor(ns, RTPROT[who], n);
  const first = await startFirstUpdate(ns);
  try {
    // Settled with no routes: the base the per-prefix memory is taken from.
    await new Promise((r) => setTimeout(r, 1500));
    const base = memory(receiver.pid).rss;
    const cpu0 = cpuSeconds(receiver.pid);
    await feeder("enable", `to_${who}_${run}`);
    const full = await Promise.race([
      monitor.l.next(`all ${n} routes in ${who}'s kernel`, (o) => o.event === "full", 900_000),
      // Twill's node-wide limit closes a feed larger than its heap holds (Cease 6/1).
      ...(receiver.events ? [receiver.events.next("Twill's limit", (o) => o.event === "peer" && o.detail === "sent NOTIFICATION 6/1", 900_000)] : []),
    ]);
    const firstAt = await first.at;
    if (full.event === "peer") {
      const held = Math.max(0, ...receiver.events!.seen.filter((o) => o.event === "rib").map((o) => o.size as number)) - 1;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const m = memory(receiver.pid);
      await feeder("disable", `to_${who}_${run}`);
      return { stoppedAt: held, kernel: Number.NaN, withdraw: Number.NaN, cpu: cpuSeconds(receiver.pid) - cpu0, base, settled: m.rss, peak: m.hwm };
    }
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const settled = memory(receiver.pid);
    const cpu = cpuSeconds(receiver.pid) - cpu0;
    const from = monitor.l.seen.length;
    const dropAt = Date.now();
    await feeder("disable", `to_${who}_${run}`);
    const empty = await monitor.l.next(`${who}'s kernel clean`, (o) => o.event === "empty", 900_000, from);
    if (monitor.l.seen.some((o) => o.event === "lost")) process.stderr.write(`[bench:bgp] ${who} ${n}: route events were lost and re-read (ENOBUFS)\n`);
    return { kernel: ((full.at as number) - firstAt) / 1000, withdraw: ((empty.at as number) - dropAt) / 1000, cpu, base: base, settled: settled.rss, peak: settled.hwm };
  } finally {
    first.child.kill("SIGKILL");
    monitor.child.kill("SIGKILL");
    await receiver.stop();
  }
}

async function runSize(n: number): Promise<Record<Who, Sample[]>> {
  const lan = await createLan(3);
  const out: Record<Who, Sample[]> = { twill: [], bird: [] };
  let feeder: ChildProcess | undefined;
  try {
    feeder = startBird(lan.ns(1), lan.dir, feederConf(lan.dir, n, runsFor(n)), "feeder");
    await waitFor("the feeder's table", async () => {
      const m = /(\d+) of \d+ routes/.exec(await birdc(lan.ns(1), lan.dir, "feeder", "show", "route", "count"));
      return m && Number(m[1]) >= n ? true : undefined;
    }, 600_000);
    for (let run = 0; run < runsFor(n); run++) {
      const order: Who[] = run % 2 === 0 ? ["twill", "bird"] : ["bird", "twill"];
      for (const who of order) {
        const s = await runOnce(who, lan, n, run);
        out[who].push(s);
        process.stderr.write(`[bench:bgp] ${n} run ${run + 1} ${who}: ${JSON.stringify(s)} load ${loadavg()[0]!.toFixed(2)}\n`);
      }
    }
    return out;
  } finally {
    feeder?.kill("SIGKILL");
    try {
      process.kill(Number(readFileSync(join(lan.dir, "feeder.pid"), "utf8")), "SIGKILL");
    } catch {
      // gone already
    }
    await lan.close();
  }
}

const MiB = 1 << 20;
const figures: Record<string, Figure> = {};
const tables: string[] = [];
const ratioRows: string[] = [];
const loads: string[] = [];
const charts: Record<string, { label: string; value: number }[]> = { kernel: [], cpu: [], mem: [] };
const fmt = (xs: number[], d = 2, scale = 1) => {
  const ci = medianInterval(xs.map((x) => x * scale));
  return `${round(median(xs) * scale, d)} (${round(ci.low, d)}–${round(ci.high, d)})`;
};

for (const n of SIZES) {
  process.stderr.write(`[bench:bgp] ${n} prefixes, ${runsFor(n)} runs each…\n`);
  const before = loadavg()[0]!.toFixed(1);
  const r = await runSize(n);
  loads.push(`${n}: ${before} before, ${loadavg()[0]!.toFixed(1)} after`);
  const per = (s: Sample[], f: (x: Sample) => number) => s.map(f);
  const metrics = {
    kernel: (x: Sample) => x.kernel,
    withdraw: (x: Sample) => x.withdraw,
    cpu: (x: Sample) => x.cpu,
    peak: (x: Sample) => x.peak / MiB,
    settled: (x: Sample) => x.settled / MiB,
    base: (x: Sample) => x.base / MiB,
    memPerPrefix: (x: Sample) => (x.settled - x.base) / n,
    cpuPerPrefix: (x: Sample) => (x.cpu / n) * 1e6,
  };
  const units: Record<keyof typeof metrics, string> = { kernel: "s", withdraw: "s", cpu: "s", peak: "MiB", settled: "MiB", base: "MiB", memPerPrefix: "B", cpuPerPrefix: "µs" };
  const med: Record<Who, Record<string, number>> = { twill: {}, bird: {} };
  const stopped = r.twill.filter((x) => x.stoppedAt !== undefined);
  for (const who of ["twill", "bird"] as const) {
    const s = who === "twill" && stopped.length ? stopped : r[who];
    if (who === "twill" && stopped.length) {
      // The feed is bigger than the daemon's heap holds: the node-wide limit closed it. What it held, and the memory then.
      figures[`twill.${n}.stoppedAt`] = { value: median(stopped.map((x) => x.stoppedAt!)), unit: "prefixes" };
      figures[`twill.${n}.peak`] = { value: round(median(stopped.map(metrics.peak)), 1), unit: "MiB" };
      tables.push(`| ${n} | Twill | closed by its node-wide limit (Cease 6/1) at ${fmt(stopped.map((x) => x.stoppedAt!), 0)} prefixes | — | ${fmt(per(s, metrics.cpu))} | ${fmt(per(s, metrics.base), 1)} | ${fmt(per(s, metrics.peak), 1)} | ${fmt(per(s, metrics.settled), 1)} | — | — |`);
      continue;
    }
    for (const [name, f] of Object.entries(metrics)) {
      const xs = per(s, f);
      const ci = medianInterval(xs);
      med[who][name] = median(xs);
      figures[`${who}.${n}.${name}`] = { value: round(median(xs), 3), unit: units[name as keyof typeof metrics] };
      figures[`${who}.${n}.${name}.low`] = { value: round(ci.low, 3), unit: units[name as keyof typeof metrics] };
      figures[`${who}.${n}.${name}.high`] = { value: round(ci.high, 3), unit: units[name as keyof typeof metrics] };
    }
    tables.push(`| ${n} | ${who === "twill" ? "Twill" : "BIRD"} | ${fmt(per(s, metrics.kernel))} | ${fmt(per(s, metrics.withdraw))} | ${fmt(per(s, metrics.cpu))} | ${fmt(per(s, metrics.base), 1)} | ${fmt(per(s, metrics.peak), 1)} | ${fmt(per(s, metrics.settled), 1)} | ${fmt(per(s, metrics.memPerPrefix), 0)} | ${fmt(per(s, metrics.cpuPerPrefix), 1)} |`);
  }
  if (stopped.length) {
    ratioRows.push(`| ${n} | Twill stopped at its limit | — | — | — | — |`);
    continue;
  }
  const ratio = (k: string) => round(med.twill[k]! / med.bird[k]!, 2);
  for (const k of ["kernel", "withdraw", "cpuPerPrefix", "memPerPrefix", "peak"]) figures[`ratio.${n}.${k}`] = { value: ratio(k), unit: "×" };
  const goal = (v: number, g: number) => (v <= g ? "met" : "not met");
  const kernelGoal = n === 10_000 || n === 100_000 ? ` (goal ≤ 1.0: ${goal(ratio("kernel"), 1)})` : "";
  ratioRows.push(`| ${n} | ${ratio("kernel")}×${kernelGoal} | ${ratio("withdraw")}× | ${ratio("cpuPerPrefix")}× (goal ≤ 2: ${goal(ratio("cpuPerPrefix"), 2)}) | ${ratio("memPerPrefix")}× (goal ≤ 2: ${goal(ratio("memPerPrefix"), 2)}) | ${ratio("peak")}× |`);
  charts.kernel!.push({ label: `${n}`, value: ratio("kernel") });
  charts.cpu!.push({ label: `${n}`, value: ratio("cpuPerPrefix") });
  charts.mem!.push({ label: `${n}`, value: ratio("memPerPrefix") });
  process.stderr.write(`[bench:bgp] ${n}: ${ratioRows.at(-1)}\n`);
}

const path = writeResults("bgp", figures, { twillNodeFlags: DAEMON_NODE_FLAGS, sizes: SIZES, runs: RUNS, runs1M: runsFor(1_000_000), settleMs: SETTLE_MS, loadAvg1m: loads });
updateDocSection("bgp", `
## BGP feed (\`npm run bench:bgp\`)

Measured ${new Date().toISOString().slice(0, 10)} by bench/bgp.ts. A BIRD feeder holds all N /24s before any session starts and feeds one receiver at a time over iBGP on a veth LAN of namespaces: Twill (the bgp backend with the daemon's reconcile, resync every 10 s as the daemon's default, Node run with the DaemonSet's heap flags \`${DAEMON_NODE_FLAGS.join(" ")}\`) or BIRD 2 (its kernel protocol). The order alternates run by run (${RUNS} runs each, ${runsFor(1_000_000)} at 1M). **Time to kernel** runs from the first UPDATE the receiver's namespace sees on the wire (tcpdump's kernel stamp) to the last of the N routes in its kernel table, counted from rtnetlink route events in that namespace (a monitor at real-time priority; nothing polls the table). **Withdraw**: the feeder drops the session; until none of the N is left in the kernel. **CPU**: user+system seconds of the receiver (children included) from enabling the session to ${SETTLE_MS / 1000} s after the last route. **RSS**: base (started, no routes), peak (VmHWM), settled (${SETTLE_MS / 1000} s after the last route). Per prefix: memory (settled − base) / N, CPU / N. Cells: median (95 % interval for the median, order statistics; with fewer than 6 runs the range).

| prefixes | receiver | time to kernel (s) | withdraw (s) | CPU (s) | base RSS (MiB) | peak RSS (MiB) | settled RSS (MiB) | memory per prefix (B) | CPU per prefix (µs) |
|---|---|---|---|---|---|---|---|---|---|
${tables.join("\n")}

Twill ÷ BIRD (medians of the same run):

| prefixes | time to kernel | withdraw | CPU per prefix | memory per prefix | peak RSS |
|---|---|---|---|---|---|
${ratioRows.join("\n")}

1-minute load average of this 2-core, shared machine around each size: ${loads.join("; ")}.

${barChart("Twill ÷ BIRD, time to all routes in the kernel", "ratio", charts.kernel!)}

${barChart("Twill ÷ BIRD, CPU per prefix", "ratio", charts.cpu!)}

${barChart("Twill ÷ BIRD, memory per prefix", "ratio", charts.mem!)}
`);
process.stderr.write(`[bench:bgp] results in ${path}\n`);
await plotBench("bgp");
