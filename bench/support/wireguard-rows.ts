import { readFileSync } from "node:fs";
import { execIn } from "../../lib/kernel/netns.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { buildWireguardReference } from "./handbuilt-wireguard.ts";
import { iperf } from "./iperf.ts";
import { barChart, type Figure } from "./report.ts";
import { median, medianInterval, round } from "./stats.ts";

// bench:dataplane's WireGuard rows: pod ↔ pod through Twill's host-gw with
// `encryption: wireguard` (wireguard-go: this kernel has no WireGuard module),
// the same backend unencrypted, and a wireguard-go tunnel of the same shape
// built by hand, taken in turn in one run so they share the background load.
// Besides throughput: round-trip latency, and CPU per Gbit/s, since user-space
// WireGuard is CPU-bound here.

interface Path {
  name: string;
  client: string;
  server: string;
  serverIp: string;
  /** Namespaces whose wireguard-go processes are counted. */
  wgNamespaces: string[];
}

interface Sample {
  gbps: number;
  /** Busy CPU seconds of the whole machine per second of transfer, per Gbit/s. */
  cpuPerGbps: number;
  /** wireguard-go's own CPU seconds per second of transfer, per Gbit/s (both nodes). */
  wgCpuPerGbps: number;
  rttMs: number;
}

const TICK = 100; // USER_HZ: /proc's clock ticks per second on Linux

function machineBusyTicks(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
}

async function wgTicks(namespaces: string[]): Promise<number> {
  let t = 0;
  for (const ns of namespaces) {
    for (const pid of await pidsIn(ns, "wireguard-go")) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        t += Number(f[11]) + Number(f[12]); // utime, stime
      } catch {
        // exited
      }
    }
  }
  return t;
}

async function rtt(p: Path): Promise<number> {
  const out = (await execIn(p.client, ["ping", "-n", "-c", "100", "-i", "0.01", p.serverIp], { allowFailure: true })).stdout;
  return median([...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])));
}

async function sample(p: Path, seconds: number): Promise<Sample> {
  const [busy0, wg0] = [machineBusyTicks(), await wgTicks(p.wgNamespaces)];
  const t0 = performance.now();
  const gbps = await iperf(p.client, p.server, p.serverIp, seconds);
  const wall = (performance.now() - t0) / 1000;
  const [busy1, wg1] = [machineBusyTicks(), await wgTicks(p.wgNamespaces)];
  return { gbps, cpuPerGbps: (busy1 - busy0) / TICK / wall / gbps, wgCpuPerGbps: (wg1 - wg0) / TICK / wall / gbps, rttMs: await rtt(p) };
}

const labPath = (name: string, lab: RunningLab, wg: boolean): Path => {
  const [a, b] = lab.state.pods;
  return { name, client: a!.ns, server: b!.ns, serverIp: b!.ip, wgNamespaces: wg ? lab.state.nodes.map((n) => n.ns) : [] };
};

export interface WireguardRows {
  figures: Record<string, Figure>;
  markdown: string;
}

export async function measureWireguard(runs: number, seconds: number): Promise<WireguardRows> {
  const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const enc = await startLab({ nodes: 2, podsPerNode: 1, backend: "host-gw", encryption: "wireguard" });
  let plain: RunningLab | undefined;
  let bare: RunningLab | undefined;
  let hand: Awaited<ReturnType<typeof buildWireguardReference>> | undefined;
  const samples: Record<string, Sample[]> = { encrypted: [], bare: [], plain: [], hand: [] };
  try {
    plain = await startLab({ nodes: 2, podsPerNode: 1, backend: "host-gw" });
    // Masquerade and policy off: no conntrack, like the hand-built tunnel (only the fail-closed filter rule remains).
    bare = await startLab({ nodes: 2, podsPerNode: 1, backend: "host-gw", encryption: "wireguard", masquerade: false, policy: false });
    hand = await buildWireguardReference(`bwg${process.pid.toString(36)}`);
    const paths: Path[] = [labPath("encrypted", enc, true), labPath("bare", bare, true), labPath("plain", plain, false), { name: "hand", client: hand.client, server: hand.server, serverIp: hand.serverIp, wgNamespaces: hand.nodes }];
    for (let i = 0; i < runs; i++) for (const p of paths) samples[p.name]!.push(await sample(p, seconds));
  } finally {
    await hand?.destroy();
    await bare?.close();
    await plain?.close();
    await enc.close();
  }
  const loadAfter = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const med = (path: string, k: keyof Sample) => round(median(samples[path]!.map((s) => s[k])), k === "gbps" ? 2 : 3);
  const pair = (a: string, b: string) => {
    const r = samples[a]!.map((s, i) => s.gbps / samples[b]![i]!.gbps);
    const ci = medianInterval(r);
    return { ratio: round(median(r), 3), low: round(ci.low, 3), high: round(ci.high, 3) };
  };
  const vsHand = pair("encrypted", "hand");
  const bareVsHand = pair("bare", "hand");
  const vsPlain = pair("encrypted", "plain");
  const figures: Record<string, Figure> = {
    twill_hostgw_wireguard_gbps: { value: med("encrypted", "gbps"), unit: "Gbit/s" },
    twill_hostgw_unencrypted_gbps_wireguard_run: { value: med("plain", "gbps"), unit: "Gbit/s" },
    handbuilt_wireguard_go_gbps: { value: med("hand", "gbps"), unit: "Gbit/s" },
    wireguard_ratio_vs_handbuilt_wireguard_go: { value: vsHand.ratio, unit: "ratio" },
    wireguard_ratio_vs_handbuilt_wireguard_go_ci95_low: { value: vsHand.low, unit: "ratio" },
    wireguard_ratio_vs_handbuilt_wireguard_go_ci95_high: { value: vsHand.high, unit: "ratio" },
    wireguard_ratio_vs_unencrypted_hostgw: { value: vsPlain.ratio, unit: "ratio" },
    twill_hostgw_wireguard_no_nat_gbps: { value: med("bare", "gbps"), unit: "Gbit/s" },
    wireguard_no_nat_ratio_vs_handbuilt_wireguard_go: { value: bareVsHand.ratio, unit: "ratio" },
    wireguard_no_nat_ratio_vs_handbuilt_wireguard_go_ci95_low: { value: bareVsHand.low, unit: "ratio" },
    wireguard_no_nat_ratio_vs_handbuilt_wireguard_go_ci95_high: { value: bareVsHand.high, unit: "ratio" },
    twill_hostgw_wireguard_rtt_ms: { value: med("encrypted", "rttMs"), unit: "ms" },
    twill_hostgw_unencrypted_rtt_ms: { value: med("plain", "rttMs"), unit: "ms" },
    handbuilt_wireguard_go_rtt_ms: { value: med("hand", "rttMs"), unit: "ms" },
    twill_hostgw_wireguard_cpu_per_gbps: { value: med("encrypted", "cpuPerGbps"), unit: "CPU s/s per Gbit/s" },
    twill_hostgw_unencrypted_cpu_per_gbps: { value: med("plain", "cpuPerGbps"), unit: "CPU s/s per Gbit/s" },
    handbuilt_wireguard_go_cpu_per_gbps: { value: med("hand", "cpuPerGbps"), unit: "CPU s/s per Gbit/s" },
    twill_hostgw_wireguard_go_process_cpu_per_gbps: { value: med("encrypted", "wgCpuPerGbps"), unit: "CPU s/s per Gbit/s" },
    handbuilt_wireguard_go_process_cpu_per_gbps: { value: med("hand", "wgCpuPerGbps"), unit: "CPU s/s per Gbit/s" },
  };
  const goalOf = (r: { ratio: number; high: number }) => (r.ratio >= 0.95 ? "met" : r.high >= 0.95 ? "within the interval" : "not met");
  const markdown = [
    "## Dataplane with WireGuard (`npm run bench:dataplane`; alone: `BENCH_DATAPLANE_ONLY=wireguard`)",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)}, ${runs} runs of ${seconds} s per path, taken in turn; 1-minute load average ${loadBefore} before, ${loadAfter} after (the machine is shared). Paths: Twill host-gw with \`encryption: wireguard\` (wireguard-go, this kernel has no WireGuard module), the same backend unencrypted (its own lab, same run), and a wireguard-go tunnel built by hand with \`wg\` in the same pod → node → underlay → node → pod shape (bench/support/handbuilt-wireguard.ts, no nftables). The Twill labs run the default configuration (masquerade and NetworkPolicy on, so conntrack runs), and one encrypted lab also with both off (no conntrack, as in the hand-built tunnel; only the fail-closed filter rule remains). CPU: busy CPU seconds of the whole machine per second of transfer, divided by the Gbit/s (so it includes iperf3 and the other helpers' load); "wireguard-go" counts only the two wireguard-go processes.`,
    "",
    "| path | Gbit/s | RTT ms (median of 100 pings) | machine CPU s/s per Gbit/s | wireguard-go CPU s/s per Gbit/s |",
    "|---|---|---|---|---|",
    `| Twill host-gw + WireGuard | ${med("encrypted", "gbps")} | ${med("encrypted", "rttMs")} | ${med("encrypted", "cpuPerGbps")} | ${med("encrypted", "wgCpuPerGbps")} |`,
    `| Twill host-gw + WireGuard, masquerade + policy off | ${med("bare", "gbps")} | ${med("bare", "rttMs")} | ${med("bare", "cpuPerGbps")} | ${med("bare", "wgCpuPerGbps")} |`,
    `| hand-built wireguard-go tunnel | ${med("hand", "gbps")} | ${med("hand", "rttMs")} | ${med("hand", "cpuPerGbps")} | ${med("hand", "wgCpuPerGbps")} |`,
    `| Twill host-gw, unencrypted | ${med("plain", "gbps")} | ${med("plain", "rttMs")} | ${med("plain", "cpuPerGbps")} | — |`,
    "",
    "| comparison (same-run pairs) | ratio (median of pairs) | 95 % interval | goal |",
    "|---|---|---|---|",
    `| Twill host-gw + WireGuard ÷ hand-built wireguard-go tunnel | ${vsHand.ratio}× | ${vsHand.low}–${vsHand.high} | ≥ 0.95: ${goalOf(vsHand)} |`,
    `| Twill host-gw + WireGuard, masquerade + policy off ÷ hand-built wireguard-go tunnel (like for like: no conntrack in either) | ${bareVsHand.ratio}× | ${bareVsHand.low}–${bareVsHand.high} | ≥ 0.95: ${goalOf(bareVsHand)} |`,
    `| Twill host-gw + WireGuard ÷ Twill host-gw unencrypted | ${vsPlain.ratio}× | ${vsPlain.low}–${vsPlain.high} | |`,
    "",
    barChart("Pod-to-pod TCP with WireGuard (Gbit/s)", "Gbit/s", [
      { label: "Twill host-gw + WG", value: med("encrypted", "gbps") },
      { label: "Twill host-gw + WG, no NAT", value: med("bare", "gbps") },
      { label: "wireguard-go (hand)", value: med("hand", "gbps") },
      { label: "Twill host-gw", value: med("plain", "gbps") },
    ]),
  ].join("\n");
  return { figures, markdown };
}
