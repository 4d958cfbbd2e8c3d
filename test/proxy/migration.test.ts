import { CoreV1Api } from "@kubernetes/client-node";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { execIn, netnsPath } from "../../lib/kernel/netns.ts";
import type { LabPod } from "../../lab/cluster.ts";
import { daemonConfig, startDaemon, waitDaemonReady } from "../../lab/daemons.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { waitEndpointsProgrammed } from "../../lab/addons/kube-proxy.ts";
import { createKubeletPod } from "../../lab/kubelet/pods.ts";
import { echoUrl } from "../../lab/services.ts";
import { until } from "../support/until.ts";

// A live cluster moves from kube-proxy to Twill's proxy, as an operator does
// it: stop kube-proxy, `kube-proxy --cleanup` on every node, then
// `serviceProxy: true` and the daemons restarted. Established connections
// through a ClusterIP carry on (their NAT is in conntrack, which neither step
// touches); new connections fail only between the cleanup and Twill's table.
// The test counts both and prints them.

const PORT = 7000;
let lab: RunningLab;
const helpers: { kill: (s: NodeJS.Signals) => boolean }[] = [];

beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", kubelet: true, addons: { proxyMode: "nftables" }, log: (m) => console.log(`[migration lab] ${m}`) });
}, 900_000);

afterAll(async () => {
  for (const h of helpers) h.kill("SIGKILL");
  await lab?.close();
});

/** One long-lived TCP connection from a pod through the ClusterIP: a line out every 200 ms, its echo counted. */
function connection(from: LabPod, vip: string): { sent: () => number; echoed: () => number; closed: () => boolean; quiet: () => void; end: () => void } {
  const p: ChildProcessWithoutNullStreams = spawn("nsenter", [`--net=${netnsPath(from.ns)}`, "socat", "-", `TCP:${vip}:${PORT}`]);
  helpers.push(p);
  let sent = 0;
  let echoed = 0;
  let closed = false;
  p.stdout.setEncoding("utf8").on("data", (d: string) => (echoed += d.split("\n").filter(Boolean).length));
  p.on("exit", () => (closed = true));
  p.stdin.on("error", () => (closed = true));
  const timer = setInterval(() => {
    if (closed) return;
    sent++;
    p.stdin.write(`ping ${sent}\n`);
  }, 200);
  return { sent: () => sent, echoed: () => echoed, closed: () => closed, quiet: () => clearInterval(timer), end: () => p.stdin.end() };
}

it("moves from kube-proxy to Twill's proxy: established connections lose nothing, new ones fail only in the gap", async () => {
  const s = lab.state;
  const core = lab.kc.makeApiClient(CoreV1Api);
  // Echo servers (socat) in two pods, one per node, behind a ClusterIP.
  const servers: LabPod[] = [];
  for (const [k, n] of s.nodes.entries()) {
    const pod = await createKubeletPod(lab.kc, s.name, n, n.kubelet!.containerd, `mig-${k + 1}`, { labels: { role: "mig" } });
    const h = spawn("nsenter", [`--net=${netnsPath(pod.ns)}`, "socat", `TCP-LISTEN:${PORT},fork,reuseaddr`, "EXEC:cat"], { stdio: "ignore" });
    helpers.push(h);
    servers.push(pod);
  }
  const svc = await core.createNamespacedService({ namespace: "default", body: { metadata: { name: "mig" }, spec: { selector: { role: "mig" }, ports: [{ protocol: "TCP", port: PORT, targetPort: PORT }] } } });
  const vip = svc.spec!.clusterIP!;
  const echo = (await core.readNamespacedService({ name: "echo", namespace: "default" })).spec!.clusterIP!;
  const eps = servers.map((p) => ({ ip: p.ip, port: PORT }));
  await waitEndpointsProgrammed(s.nodes, "nftables", eps);
  const conns = s.pods.flatMap((p) => [connection(p, vip), connection(p, vip), connection(p, vip)]);
  await until("every connection echoes", async () => conns.every((c) => c.echoed() >= 3), 30_000);

  // New connections, one after another, through the whole migration.
  let probing = true;
  const probes = { ok: 0, failed: 0, firstFail: 0, lastFail: 0 };
  const prober = (async () => {
    while (probing) {
      const r = await execIn(s.pods[0]!.ns, ["curl", "-s", "-o", "/dev/null", "-m", "1", echoUrl(echo)], { allowFailure: true });
      if (r.code === 0) probes.ok++;
      else {
        probes.failed++;
        probes.lastFail = Date.now();
        probes.firstFail ||= Date.now();
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 1000));
  const t0 = Date.now();
  // 1. kube-proxy stopped and its rules removed on every node.
  for (const n of s.nodes) {
    for (const pid of await pidsIn(n.ns, "kube-proxy")) process.kill(pid, "SIGTERM");
    await until(`kube-proxy on ${n.name} exits`, async () => (await pidsIn(n.ns, "kube-proxy")).length === 0);
    const r = await execIn(n.ns, [join(s.bin!, "kube-proxy"), "--cleanup", `--config=${join(n.dir, "kube-proxy", "config.yaml")}`], { allowFailure: true });
    expect(r.code, r.stderr.slice(-1000)).toBe(0);
    expect((await execIn(n.ns, ["nft", "list", "table", "ip", "kube-proxy"], { allowFailure: true })).code).not.toBe(0);
  }
  const cleaned = Date.now();
  // 2. serviceProxy: true, and every daemon restarted with it.
  const files = s.daemonFiles!;
  writeFileSync(files.config, daemonConfig({ backend: s.backend, serviceProxy: true }));
  for (const n of s.nodes) {
    for (const pid of await pidsIn(n.ns, "daemon/main.ts")) process.kill(pid, "SIGTERM");
    await until(`the daemon on ${n.name} exits`, async () => (await pidsIn(n.ns, "daemon/main.ts")).length === 0);
    await waitDaemonReady(n, startDaemon(n, files));
  }
  await waitEndpointsProgrammed(s.nodes, "twill", eps);
  const programmed = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  probing = false;
  await prober;
  for (const c of conns) c.quiet();
  const sent = conns.map((c) => c.sent());
  await new Promise((r) => setTimeout(r, 1000));
  for (const c of conns) c.end();
  const lost = conns.reduce((a, c, i) => a + (sent[i]! - c.echoed()), 0);
  console.log(
    `[migration] ${conns.length} established connections: ${conns.filter((c) => c.closed()).length} closed, ${lost} of ${sent.reduce((a, b) => a + b, 0)} lines unanswered; ` +
      `new connections: ${probes.ok} ok, ${probes.failed} failed${probes.failed ? ` over ${probes.lastFail - probes.firstFail} ms` : ""}; ` +
      `cleanup took ${cleaned - t0} ms, Twill programmed ${programmed - cleaned} ms after it`,
  );
  expect(conns.filter((c) => c.closed())).toEqual([]);
  expect(lost).toBe(0);
  // After the move, new connections work again, through Twill's table alone.
  expect((await execIn(s.pods[1]!.ns, ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", echoUrl(echo)], { allowFailure: true })).stdout).toBe("200");
  for (const n of s.nodes) expect((await execIn(n.ns, ["nft", "list", "table", "inet", "twill-proxy"])).stdout).toContain(`${vip} . tcp . ${PORT} : goto svc-default/mig/tcp/${PORT}`);
}, 300_000);
