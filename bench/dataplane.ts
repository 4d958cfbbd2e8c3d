// npm run bench:dataplane — pod↔pod TCP throughput across two nodes through
// Twill's vxlan, host-gw and bgp dataplanes, against the same topologies built
// by hand with `ip` and against a raw veth pair, all in the same run.
import { plotBench } from "./support/plot.ts";
import { startLab } from "../lab/lab.ts";
import { BIG_TCP, buildReference, type Reference } from "./support/handbuilt.ts";
import { iperf } from "./support/iperf.ts";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { barChart, REPO, updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { median, medianInterval, round } from "./support/stats.ts";
import { measureWireguard } from "./support/wireguard-rows.ts";

const RUNS = Number(process.env.BENCH_DATAPLANE_RUNS ?? 9);
const SECONDS = Number(process.env.BENCH_DATAPLANE_SECONDS ?? 4);

type Backend = "vxlan" | "host-gw" | "bgp";
/** Gbit/s of each run, by path ("twill" or a reference), index i of every path taken back to back. */
type Runs = Record<string, number[]>;

/**
 * Twill's path and its hand-built references, measured alternately while the
 * lab (apiserver, etcd, controller manager, daemons) runs, so all see the
 * same background load on this 2-core machine.
 */
async function measure(backend: Backend, conntrack: boolean, refs: Reference[], underlayGso?: number): Promise<Runs> {
  const lab = await startLab({ nodes: 2, podsPerNode: 1, backend, masquerade: conntrack, policy: conntrack, ...(underlayGso ? { underlayGso } : {}) });
  const built = [] as { name: string; topo: Awaited<ReturnType<typeof buildReference>> }[];
  try {
    for (const ref of refs) built.push({ name: ref, topo: await buildReference(ref, `bdp${process.pid.toString(36)}${built.length}`) });
    const [a, b] = lab.state.pods;
    const runs: Runs = { twill: [] };
    for (const r of built) runs[r.name] = [];
    for (let i = 0; i < RUNS; i++) {
      runs.twill!.push(await iperf(a!.ns, b!.ns, b!.ip, SECONDS));
      for (const r of built) runs[r.name]!.push(await iperf(r.topo.client, r.topo.server, r.topo.serverIp, SECONDS));
    }
    return runs;
  } finally {
    for (const r of built) await r.topo.destroy();
    await lab.close();
  }
}

/**
 * The ratio of two paths as the median of the ratios of runs taken back to
 * back (slow drifts in background load cancel within a pair), with a 95 %
 * distribution-free interval for that median.
 */
function pairRatio(runs: Runs, path: string, reference: string) {
  const ratios = runs[path]!.map((v, i) => v / runs[reference]![i]!);
  const ci = medianInterval(ratios);
  return { ratio: median(ratios), low: ci.low, high: ci.high };
}

console.log(`bench:dataplane — iperf3, one TCP stream, ${SECONDS} s × ${RUNS} runs per path`);
// BENCH_DATAPLANE_ONLY=wireguard: only the WireGuard rows, merged into the last full run's figures.
if (process.env.BENCH_DATAPLANE_ONLY === "wireguard") {
  const wg = await measureWireguard(RUNS, SECONDS);
  console.log(`\n${wg.markdown}\n`);
  const path = join(REPO, "bench-results", "dataplane.json");
  const last = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as { figures: Record<string, Figure>; runs: number; seconds: number; measuredAt: string; measuredAtWithoutWireguard?: string }) : undefined;
  // The other figures keep the date of the full run that measured them.
  const others = last?.measuredAtWithoutWireguard ?? last?.measuredAt;
  writeResults("dataplane", { ...(last?.figures ?? {}), ...wg.figures }, { runs: last?.runs ?? RUNS, seconds: last?.seconds ?? SECONDS, ...(others ? { measuredAtWithoutWireguard: others } : {}), wireguardRuns: RUNS, wireguardSeconds: SECONDS });
  updateDocSection("dataplane-wireguard", wg.markdown);
  process.exit(0);
}
// Default configuration: masquerade and NetworkPolicy on, so conntrack runs in both nodes.
const hostGw = await measure("host-gw", true, ["routes", "routes-nat", "routes-nat-bpf", "veth"]);
const vx = await measure("vxlan", true, ["vxlan", "vxlan-nat", "veth"]);
// Masquerade and NetworkPolicy switched off: no nftables table, so no conntrack — like for like with the plain references.
const hgBare = await measure("host-gw", false, ["routes"]);
const vxBare = await measure("vxlan", false, ["vxlan"]);
// BGP mode: no encapsulation, so its references are the same routes.
const bgp = await measure("bgp", true, ["routes", "routes-nat"]);
// An underlay raised to BIG TCP sizes (as an operator sets a capable NIC): Twill's pods follow it.
const hgBig = await measure("host-gw", true, ["routes", "routes-big", "routes-nat-big"], BIG_TCP);
// encryption: wireguard against the same backend unencrypted and a hand-built wireguard-go tunnel.
const wireguard = await measureWireguard(RUNS, SECONDS);

interface Comparison {
  key: string;
  label: string;
  runs: Runs;
  path: string;
  reference: string;
  goal?: number;
}
const comparisons: Comparison[] = [
  { key: "hostgw_ratio_vs_handbuilt_routes", label: "Twill host-gw ÷ hand-built routes", runs: hostGw, path: "twill", reference: "routes", goal: 0.98 },
  { key: "hostgw_ratio_vs_handbuilt_routes_masquerade", label: "Twill host-gw ÷ hand-built routes with Twill's masquerade rules", runs: hostGw, path: "twill", reference: "routes-nat" },
  { key: "conntrack_cost_handbuilt_routes", label: "hand-built routes with masquerade rules ÷ without: the price of conntrack", runs: hostGw, path: "routes-nat", reference: "routes" },
  {
    key: "bpf_fastpath_ratio_vs_handbuilt_routes",
    label: "hand-built routes with masquerade rules and a BPF fast path for established TCP (no netfilter) ÷ hand-built routes: the most a conntrack offload gives back",
    runs: hostGw,
    path: "routes-nat-bpf",
    reference: "routes",
  },
  { key: "hostgw_no_nat_ratio_vs_handbuilt_routes", label: "Twill host-gw, masquerade + policy off ÷ hand-built routes", runs: hgBare, path: "twill", reference: "routes", goal: 0.98 },
  { key: "vxlan_ratio_vs_handbuilt_vxlan", label: "Twill vxlan ÷ hand-built VXLAN", runs: vx, path: "twill", reference: "vxlan", goal: 0.97 },
  { key: "vxlan_ratio_vs_handbuilt_vxlan_masquerade", label: "Twill vxlan ÷ hand-built VXLAN with Twill's masquerade rules", runs: vx, path: "twill", reference: "vxlan-nat" },
  { key: "conntrack_cost_handbuilt_vxlan", label: "hand-built VXLAN with masquerade rules ÷ without: the price of conntrack", runs: vx, path: "vxlan-nat", reference: "vxlan" },
  { key: "vxlan_no_nat_ratio_vs_handbuilt_vxlan", label: "Twill vxlan, masquerade + policy off ÷ hand-built VXLAN", runs: vxBare, path: "twill", reference: "vxlan", goal: 0.97 },
  { key: "bgp_ratio_vs_handbuilt_routes", label: "Twill bgp ÷ hand-built routes", runs: bgp, path: "twill", reference: "routes" },
  { key: "bgp_ratio_vs_handbuilt_routes_masquerade", label: "Twill bgp ÷ hand-built routes with Twill's masquerade rules", runs: bgp, path: "twill", reference: "routes-nat" },
  { key: "hostgw_big_tcp_ratio_vs_handbuilt_routes", label: `Twill host-gw on a BIG TCP underlay (${BIG_TCP} B) ÷ hand-built routes`, runs: hgBig, path: "twill", reference: "routes" },
  { key: "hostgw_big_tcp_ratio_vs_handbuilt_routes_big_tcp", label: "Twill host-gw on a BIG TCP underlay ÷ hand-built routes with the same BIG TCP sizes on every device", runs: hgBig, path: "twill", reference: "routes-big" },
  { key: "hostgw_big_tcp_ratio_vs_handbuilt_routes_big_tcp_masquerade", label: "Twill host-gw on a BIG TCP underlay ÷ hand-built routes with the same sizes and Twill's masquerade rules", runs: hgBig, path: "twill", reference: "routes-nat-big" },
  { key: "conntrack_cost_handbuilt_routes_big_tcp", label: "hand-built routes with BIG TCP: with masquerade rules ÷ without (the price of conntrack at BIG TCP sizes)", runs: hgBig, path: "routes-nat-big", reference: "routes-big" },
  { key: "hostgw_ratio_vs_raw_veth", label: "Twill host-gw ÷ raw veth pair", runs: hostGw, path: "twill", reference: "veth" },
  { key: "vxlan_ratio_vs_raw_veth", label: "Twill vxlan ÷ raw veth pair", runs: vx, path: "twill", reference: "veth" },
];

const gbps = (runs: Runs, path: string): Figure => ({ value: round(median(runs[path]!)), unit: "Gbit/s" });
const fig: Record<string, Figure> = {
  raw_veth_gbps: { value: round(median([...hostGw.veth!, ...vx.veth!])), unit: "Gbit/s" },
  handbuilt_routes_gbps: gbps(hostGw, "routes"),
  handbuilt_routes_masquerade_gbps: gbps(hostGw, "routes-nat"),
  handbuilt_routes_masquerade_bpf_gbps: gbps(hostGw, "routes-nat-bpf"),
  handbuilt_vxlan_gbps: gbps(vx, "vxlan"),
  handbuilt_vxlan_masquerade_gbps: gbps(vx, "vxlan-nat"),
  twill_hostgw_gbps: gbps(hostGw, "twill"),
  twill_vxlan_gbps: gbps(vx, "twill"),
  twill_bgp_gbps: gbps(bgp, "twill"),
  twill_hostgw_big_tcp_gbps: gbps(hgBig, "twill"),
  handbuilt_routes_big_tcp_gbps: gbps(hgBig, "routes-big"),
  handbuilt_routes_big_tcp_masquerade_gbps: gbps(hgBig, "routes-nat-big"),
};
const rows: string[] = [];
for (const c of comparisons) {
  const r = pairRatio(c.runs, c.path, c.reference);
  fig[c.key] = { value: round(r.ratio, 3), unit: "ratio" };
  fig[`${c.key}_ci95_low`] = { value: round(r.low, 3), unit: "ratio" };
  fig[`${c.key}_ci95_high`] = { value: round(r.high, 3), unit: "ratio" };
  const goal = c.goal === undefined ? "" : `≥ ${c.goal}: ${r.ratio >= c.goal ? "met" : r.high >= c.goal ? "within the interval" : "not met"}`;
  rows.push(`| ${c.label} | ${round(r.ratio, 3)}× | ${round(r.low, 3)}–${round(r.high, 3)} | ${goal} |`);
}
const throughput = [
  "| path | Gbit/s (median) |",
  "|---|---|",
  `| raw veth pair | ${fig.raw_veth_gbps!.value} |`,
  `| hand-built routes (host-gw shape) | ${fig.handbuilt_routes_gbps!.value} |`,
  `| hand-built routes + Twill's masquerade rules (conntrack on) | ${fig.handbuilt_routes_masquerade_gbps!.value} |`,
  `| hand-built routes + masquerade rules + BPF fast path for established TCP (skips netfilter) | ${fig.handbuilt_routes_masquerade_bpf_gbps!.value} |`,
  `| Twill host-gw | ${fig.twill_hostgw_gbps!.value} |`,
  `| Twill bgp (its own lab run) | ${fig.twill_bgp_gbps!.value} |`,
  `| hand-built VXLAN | ${fig.handbuilt_vxlan_gbps!.value} |`,
  `| hand-built VXLAN + Twill's masquerade rules (conntrack on) | ${fig.handbuilt_vxlan_masquerade_gbps!.value} |`,
  `| Twill vxlan | ${fig.twill_vxlan_gbps!.value} |`,
  `| Twill host-gw, underlay raised to BIG TCP (${BIG_TCP} B): pods follow it | ${fig.twill_hostgw_big_tcp_gbps!.value} |`,
  `| hand-built routes, every device at the same BIG TCP size | ${fig.handbuilt_routes_big_tcp_gbps!.value} |`,
  `| hand-built routes, every device at the same BIG TCP size, + Twill's masquerade rules | ${fig.handbuilt_routes_big_tcp_masquerade_gbps!.value} |`,
].join("\n");
const ratios = ["| comparison (same-run pairs) | ratio (median of pairs) | 95 % interval | goal |", "|---|---|---|---|", ...rows].join("\n");
console.log(`\n${throughput}\n\n${ratios}\n`);
writeResults("dataplane", { ...fig, ...wireguard.figures }, { runs: RUNS, seconds: SECONDS });
updateDocSection("dataplane-wireguard", wireguard.markdown);
updateDocSection(
  "dataplane",
  [
    "## Dataplane (`npm run bench:dataplane`)",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)}: pod↔pod across two lab nodes, iperf3 with one TCP stream for ${SECONDS} s, ${RUNS} runs per path. Each Twill path alternates with its references while the lab's control plane and daemons run, so each Twill run has a reference run taken right after it under the same background load. A ratio is the median of those pairs' ratios, with a distribution-free 95 % interval for the median (order statistics). The references are the same topology built by hand with \`ip\` (pod veth → node → underlay bridge → node → pod veth) with plain routes or a VXLAN device, each also with Twill's masquerade rules added, and a bare veth pair. Everything runs on one 2-core machine: the sender, the receiver and the kernel's forwarding share the two cores, and single runs vary by several percent.`,
    "",
    throughput,
    "",
    ratios,
    "",
    `Where the gap to the plain references comes from: connection tracking. Twill's default configuration programs egress masquerade and NetworkPolicy; NAT and stateful filtering both rest on conntrack, and once any rule needs it the kernel tracks every packet forwarded in the node's namespace (Flannel's and Calico's iptables rules, and kube-proxy's, do the same). The plain references run without it. The rows above measure that directly: the hand-built references with Twill's masquerade rules added cost what Twill costs, and Twill with masquerade and policy off (no nftables table at all) runs as fast as the plain references. Pod-to-pod traffic cannot simply be exempted from conntrack: kube-proxy's Service DNAT needs the reply of a pod-to-pod flow tracked to undo the translation, and a policy that allows a connection one way must let its replies back. Production kernels can move established flows onto an nftables flowtable (a software fast path past conntrack and the forwarding path); this machine's kernel is built without \`CONFIG_NF_FLOW_TABLE\`. The BPF row stands in for any such offload at its best: a tc program (bench/support/bpf-fastpath.ts) on both nodes' devices sends every established TCP segment straight to its next hop, with no conntrack lookup and no policy, so netfilter sees only handshakes. In this run it reaches ${fig.bpf_fastpath_ratio_vs_handbuilt_routes!.value}× the plain routes, against ${fig.conntrack_cost_handbuilt_routes!.value}× with conntrack: the program, its FIB lookup and the neighbour output cost per segment close to what conntrack does (one stream of ~46 KB GSO segments on two shared cores, where any per-segment work shows as a few percent)${fig.bpf_fastpath_ratio_vs_handbuilt_routes!.value < 0.98 ? ", so even a perfect offload would stay below 0.98× here" : ""}.`,
    "",
    `BIG TCP rows: a lab whose underlay links take packets up to ${BIG_TCP} B, as an operator raises a capable NIC's \`gso_ipv4_max_size\`/\`gro_ipv4_max_size\`; Twill's host-gw pods follow the underlay (docs/daemon.md), masquerade and policy on. Against the plain hand-built routes (every device at the kernel's 64 KiB) Twill runs ${fig.hostgw_big_tcp_ratio_vs_handbuilt_routes!.value}×. Like for like, against the same topology with every device raised to the same size, it runs ${fig.hostgw_big_tcp_ratio_vs_handbuilt_routes_big_tcp!.value}× (${fig.hostgw_big_tcp_ratio_vs_handbuilt_routes_big_tcp_masquerade!.value}× against that with Twill's masquerade rules). Conntrack's price at these sizes is ${fig.conntrack_cost_handbuilt_routes_big_tcp!.value}×, against ${fig.conntrack_cost_handbuilt_routes!.value}× at 64 KiB (intervals above; runs at BIG TCP sizes vary more). VXLAN cannot take part: an encapsulated packet's outer UDP length is 16 bits, and a BIG packet sent into a VXLAN device cut one stream from ~10 to 0.3 Gbit/s here, so Twill's vxlan pods stay at 64 KiB on any underlay.`,
    "",
    barChart("Pod-to-pod TCP throughput (Gbit/s)", "Gbit/s", [
      { label: "raw veth", value: fig.raw_veth_gbps!.value },
      { label: "routes (hand)", value: fig.handbuilt_routes_gbps!.value },
      { label: "routes+NAT (hand)", value: fig.handbuilt_routes_masquerade_gbps!.value },
      { label: "Twill host-gw", value: fig.twill_hostgw_gbps!.value },
      { label: "Twill bgp", value: fig.twill_bgp_gbps!.value },
      { label: "VXLAN (hand)", value: fig.handbuilt_vxlan_gbps!.value },
      { label: "VXLAN+NAT (hand)", value: fig.handbuilt_vxlan_masquerade_gbps!.value },
      { label: "Twill vxlan", value: fig.twill_vxlan_gbps!.value },
      { label: "Twill host-gw, BIG TCP", value: fig.twill_hostgw_big_tcp_gbps!.value },
      { label: "routes, BIG TCP (hand)", value: fig.handbuilt_routes_big_tcp_gbps!.value },
    ]),
  ].join("\n"),
);
await plotBench("dataplane");
process.exit(0);
