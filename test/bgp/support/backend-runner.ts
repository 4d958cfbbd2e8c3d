import { readFileSync } from "node:fs";
import { attachLab } from "../../../lab/lab.ts";
import { kubeConfig } from "../../../lab/kube.ts";
import { bgpBackend } from "../../../daemon/backends/bgp/bgp.ts";
import { watchBgpCrds, type BgpCrds } from "../../../daemon/backends/bgp/crd.ts";
import { Speaker } from "../../../daemon/bgp/speaker/speaker.ts";
import type { ClusterView, NodeInfo } from "../../../daemon/cluster/view.ts";
import { parseConfig } from "../../../daemon/config.ts";
import { reconcile } from "../../../daemon/kernel/reconcile.ts";
import { findUnderlay } from "../../../daemon/kernel/underlay.ts";
import { createLogger } from "../../../lib/log.ts";

// The bgp backend and the daemon's real reconcile, run inside a test node's
// namespace on a fixed cluster view: what the agent loop does, minus the API
// server. Usage: node backend-runner.ts SPEC.json  ({ self, nodes: NodeInfo[] }).
// With `lab`, BGPPeers (and their password Secret) come from the shared lab's
// apiserver as the twill ServiceAccount, reached through a forwarder opened in
// this namespace; only the BGPPeers named with `peerPrefix` are used (other
// files create theirs in the same cluster), and the BGPConfiguration is not.

interface Spec {
  self: string;
  nodes: NodeInfo[];
  config?: string;
  lab?: { name: string; token: string; peerPrefix: string };
  twillBinary?: string;
}
const spec = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Spec;
const view: ClusterView = { nodes: new Map(spec.nodes.map((n) => [n.name, n])), skipped: new Map() };
const info = view.nodes.get(spec.self)!;
const cfg = parseConfig(spec.config ?? "clusterCIDR: 10.244.0.0/16\nbackend: bgp\nbgp: {}\n");
const log = createLogger({ name: "bgp-backend-test", level: process.env.TWILL_LOG_LEVEL ?? "debug" });
// With TWILL_BGP_REPORT set, every RIB size change is reported (the benchmark times the RIB with it).
const report = process.env.TWILL_BGP_REPORT === "1";
let crds: BgpCrds | undefined;
if (spec.lab) {
  const lab = await attachLab(spec.lab.name);
  const all = watchBgpCrds(kubeConfig(lab.forwarder.port, { ca: lab.state.admin.ca, token: spec.lab.token }, "twill"), log);
  const prefix = spec.lab.peerPrefix;
  crds = { ...all, config: () => undefined, peers: () => all.peers().filter((p) => p.name.startsWith(prefix)) };
}
const backend = bgpBackend(cfg, {
  log,
  ...(crds ? { crds } : {}),
  ...(spec.twillBinary ? { twillBinary: spec.twillBinary } : {}),
  makeSpeaker: (sc, events) => {
    const speaker: Speaker = new Speaker(sc, log, {
      ...events,
      onPeerState: (peer, state, detail) => {
        events.onPeerState?.(peer, state, detail);
        if (report) process.stdout.write(`${JSON.stringify({ event: "peer", peer, state, detail, at: Date.now() })}\n`);
      },
      onBest: (changes) => {
        events.onBest?.(changes);
        if (report) process.stdout.write(`${JSON.stringify({ event: "rib", size: speaker.rib.size, at: Date.now() })}\n`);
      },
    });
    return speaker;
  },
});
const local = { info, underlay: await findUnderlay(info.ip) };
await backend.prepare(local);

let running = false;
let again = false;
async function tick(): Promise<void> {
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    const desired = backend.desired(view, local, 1500);
    const changes = await reconcile(desired);
    process.stdout.write(`${JSON.stringify({ event: "reconciled", changes, routes: desired.routes.length, at: Date.now() })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ event: "error", code: (err as { code?: string }).code, message: (err as Error).message })}\n`);
  } finally {
    running = false;
    if (again) {
      again = false;
      void tick();
    }
  }
}
backend.watch?.(() => void tick());
// The agent resyncs every resync period (10 s by default); tests want it sooner.
setInterval(() => void tick(), Number(process.env.TWILL_RESYNC_MS ?? 2000));
void tick();
process.stdout.write(`${JSON.stringify({ event: "ready" })}\n`);
