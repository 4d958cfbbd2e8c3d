// npm run bench:dataplane — pod↔pod TCP throughput across two nodes through
// Twill's vxlan and host-gw dataplanes, against the same topologies built by
// hand with `ip` and against a raw veth pair, all in the same run.
import { startLab } from "../lab/lab.ts";
import { buildReference, type Reference } from "./support/handbuilt.ts";
import { iperf } from "./support/iperf.ts";
import { barChart, updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { round } from "./support/stats.ts";

const RUNS = Number(process.env.BENCH_DATAPLANE_RUNS ?? 5);
const SECONDS = Number(process.env.BENCH_DATAPLANE_SECONDS ?? 4);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Twill's path and its hand-built reference, measured alternately while the
 * lab (apiserver, etcd, controller manager, daemons) runs, so both see the
 * same background load on this 2-core machine.
 */
async function pair(backend: "vxlan" | "host-gw", ref: Reference): Promise<{ twill: number; ref: number; veth: number }> {
  const lab = await startLab({ nodes: 2, podsPerNode: 1, backend });
  const refTopo = await buildReference(ref, `bdp${process.pid.toString(36)}${ref.slice(0, 2)}`);
  const veth = await buildReference("veth", `bdp${process.pid.toString(36)}ve`);
  try {
    const [a, b] = lab.state.pods;
    const t: number[] = [];
    const r: number[] = [];
    const v: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      t.push(await iperf(a!.ns, b!.ns, b!.ip, SECONDS));
      r.push(await iperf(refTopo.client, refTopo.server, refTopo.serverIp, SECONDS));
      v.push(await iperf(veth.client, veth.server, veth.serverIp, SECONDS));
    }
    return { twill: median(t), ref: median(r), veth: median(v) };
  } finally {
    await refTopo.destroy();
    await veth.destroy();
    await lab.close();
  }
}

console.log(`bench:dataplane — iperf3, one TCP stream, ${SECONDS} s × ${RUNS} runs each (median)`);
const hostGw = await pair("host-gw", "routes");
const vx = await pair("vxlan", "vxlan");
const r = {
  veth: median([hostGw.veth, vx.veth]),
  routes: hostGw.ref,
  vxlan: vx.ref,
  twillHostGw: hostGw.twill,
  twillVxlan: vx.twill,
};
const fig: Record<string, Figure> = {
  raw_veth_gbps: { value: round(r.veth), unit: "Gbit/s" },
  handbuilt_routes_gbps: { value: round(r.routes), unit: "Gbit/s" },
  handbuilt_vxlan_gbps: { value: round(r.vxlan), unit: "Gbit/s" },
  twill_hostgw_gbps: { value: round(r.twillHostGw), unit: "Gbit/s" },
  twill_vxlan_gbps: { value: round(r.twillVxlan), unit: "Gbit/s" },
  hostgw_ratio_vs_handbuilt_routes: { value: round(r.twillHostGw / r.routes, 3), unit: "ratio" },
  vxlan_ratio_vs_handbuilt_vxlan: { value: round(r.twillVxlan / r.vxlan, 3), unit: "ratio" },
  hostgw_ratio_vs_raw_veth: { value: round(r.twillHostGw / r.veth, 3), unit: "ratio" },
  vxlan_ratio_vs_raw_veth: { value: round(r.twillVxlan / r.veth, 3), unit: "ratio" },
};
const table = [
  "| path | Gbit/s | ratio |",
  "|---|---|---|",
  `| raw veth pair | ${fig.raw_veth_gbps!.value} | — |`,
  `| hand-built routes (host-gw shape) | ${fig.handbuilt_routes_gbps!.value} | — |`,
  `| Twill host-gw | ${fig.twill_hostgw_gbps!.value} | ${fig.hostgw_ratio_vs_handbuilt_routes!.value}× hand-built routes (goal ≥ 0.98) |`,
  `| hand-built VXLAN | ${fig.handbuilt_vxlan_gbps!.value} | — |`,
  `| Twill vxlan | ${fig.twill_vxlan_gbps!.value} | ${fig.vxlan_ratio_vs_handbuilt_vxlan!.value}× hand-built VXLAN (goal ≥ 0.97) |`,
].join("\n");
console.log(`\n${table}\n`);
writeResults("dataplane", fig, { runs: RUNS, seconds: SECONDS });
updateDocSection(
  "dataplane",
  [
    "## Dataplane (`npm run bench:dataplane`)",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)}: pod↔pod across two lab nodes, iperf3 with one TCP stream for ${SECONDS} s, median of ${RUNS} runs per path, all paths in the same run, each Twill path alternating with its reference while the lab's control plane and daemons run (so both see the same background load). The references are the same topology built by hand with \`ip\` (pod veth → node → underlay bridge → node → pod veth), with plain routes or a VXLAN device, and a bare veth pair. Everything runs on one 2-core machine, so the sender, the receiver and the kernel's forwarding share the same two cores: ratios are the figure to read, and single runs vary by several percent.`,
    "",
    table,
    "",
    barChart("Pod-to-pod TCP throughput (Gbit/s)", "Gbit/s", [
      { label: "raw veth", value: fig.raw_veth_gbps!.value },
      { label: "routes (hand)", value: fig.handbuilt_routes_gbps!.value },
      { label: "Twill host-gw", value: fig.twill_hostgw_gbps!.value },
      { label: "VXLAN (hand)", value: fig.handbuilt_vxlan_gbps!.value },
      { label: "Twill vxlan", value: fig.twill_vxlan_gbps!.value },
    ]),
  ].join("\n"),
);
process.exit(0);
