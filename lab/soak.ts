// The soak (issue 22): mixed churn on a fast lab for N minutes (pods created and deleted, a NetworkPolicy
// flipped, a node joining and leaving), then the figures: daemon RSS and fd slope, what leaked (IPs, veths,
// routes, nft elements; goal 0 each), error counts, and the p99 of policy flips and pod-ready.
// scripts/soak.ts (npm run soak) and test/reliability/soak.test.ts (a short one in CI) run it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, NetworkingV1Api } from "@kubernetes/client-node";
import { createPod, deletePodNetwork, type LabNode, type LabPod } from "./cluster.ts";
import { addNode, pidsIn, startLab, type RunningLab } from "./lab.ts";
import { processStats } from "./process.ts";
import { deleteNetns, execIn } from "../lib/kernel/netns.ts";
import { podNs } from "./names.ts";
import { IpamStore } from "../lib/ipam/store.ts";
import { HOST_VETH_PREFIX } from "../lib/kernel/protocols.ts";

export interface SoakOptions {
  minutes: number;
  nodes: number;
  log: (msg: string) => void;
}

export type SoakFigures = Record<string, { value: number; unit: string }>;

const p99 = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.99) - 1)]! : NaN);
/** Least-squares slope of y over x (per minute when x is in minutes). */
function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den ? num / den : 0;
}

async function daemonStats(n: LabNode): Promise<{ rssKiB: number; fds: number }> {
  const [pid] = await pidsIn(n.ns, "daemon/main.ts");
  return processStats(pid!);
}

const reaches = async (from: LabPod, to: LabPod) => (await execIn(from.ns, ["ping", "-c", "1", "-W", "0.3", to.ip], { allowFailure: true })).code === 0;

async function until(cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<number> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > timeoutMs) throw new Error("soak: a change did not take effect within 60 s");
  }
  return (performance.now() - t0) / 1000;
}

export async function runSoak(o: SoakOptions): Promise<SoakFigures> {
  const { minutes, log } = o;
  const lab: RunningLab = await startLab({ nodes: o.nodes, podsPerNode: 1, backend: "vxlan", log });
  const core = lab.kc.makeApiClient(CoreV1Api);
  const net = lab.kc.makeApiClient(NetworkingV1Api);
  const nodes = lab.state.nodes;
  const [probe, target] = [lab.state.pods[0]!, lab.state.pods[1]!];
  const churn: { pod: LabPod; node: LabNode }[] = [];
  const podReady: number[] = [];
  const flips: number[] = [];
  const samples: { t: number; rssKiB: number; fds: number }[][] = nodes.map(() => []);
  const errors = { churnFailures: 0, apiserverErrors: 0 };
  let joined: LabNode | undefined;
  let seq = 0;
  const t0 = Date.now();
  const end = t0 + minutes * 60_000;
  let nextSample = 0;
  try {
    for (let step = 0; Date.now() < end; step++) {
      if (Date.now() >= nextSample) {
        for (const [k, n] of nodes.entries()) samples[k]!.push({ t: (Date.now() - t0) / 60_000, ...(await daemonStats(n)) });
        nextSample = Date.now() + 10_000;
      }
      try {
        switch (step % 6) {
          case 0:
          case 1: {
            const node = nodes[seq % nodes.length]!;
            const name = `soak-${seq++}`;
            const t = performance.now();
            try {
              const pod = await createPod(lab.kc, lab.state.name, node, name);
              podReady.push((performance.now() - t) / 1000);
              churn.push({ pod, node });
            } catch (err) {
              // Half made (say the apiserver failed the status write): undo what exists, as a kubelet would.
              const made = await core.readNamespacedPod({ name, namespace: "default" }).catch(() => undefined);
              if (made) await removePod(core, node, { name, namespace: "default", node: node.name, ns: podNs(lab.state.name, name), ip: "", containerId: made.metadata?.uid ?? name }).catch(() => {});
              throw err;
            }
            break;
          }
          case 2:
          case 3: {
            const victim = churn.shift();
            if (victim) await removePod(core, victim.node, victim.pod);
            break;
          }
          case 4: {
            // A policy flip: deny every ingress to the target, then lift it; each measured until a probe sees it.
            await net.createNamespacedNetworkPolicy({ namespace: "default", body: { metadata: { name: "soak-deny" }, spec: { podSelector: { matchLabels: { app: target.name } }, policyTypes: ["Ingress"] } } });
            flips.push(await until(async () => !(await reaches(probe, target))));
            await net.deleteNamespacedNetworkPolicy({ name: "soak-deny", namespace: "default" });
            flips.push(await until(() => reaches(probe, target)));
            break;
          }
          case 5: {
            if (!joined) joined = await addNode(lab, nodes.length + 1);
            else {
              await removeNode(core, joined);
              joined = undefined;
            }
            break;
          }
        }
      } catch (err) {
        // The apiserver failing a request (etcd timeouts on an overloaded machine) is the lab's trouble, not Twill's.
        const apiserver = Number((err as { code?: unknown }).code) >= 500;
        if (apiserver) errors.apiserverErrors++;
        else errors.churnFailures++;
        log(`churn step failed${apiserver ? " (apiserver error)" : ""}: ${String((err as Error).message ?? err).split("\n")[0]}`);
      }
    }
    // Quiesce: everything the soak made goes, then two resync periods pass.
    for (const c of churn.splice(0)) await removePod(core, c.node, c.pod);
    if (joined) await removeNode(core, joined);
    await new Promise((r) => setTimeout(r, 12_000));
    const live = new Set(lab.state.pods.map((p) => p.ip));
    const leaks = { ips: 0, veths: 0, routes: 0, nftElements: 0 };
    const podsOn = (n: LabNode) => lab.state.pods.filter((p) => p.node === n.name);
    for (const n of nodes) {
      leaks.ips += new IpamStore(join(n.ipamDir, "twill")).list().filter((a) => !live.has(a.ip)).length;
      // Host ends are named twl + hex (lib/kernel/protocols.ts); "twlab…" in a line is the lab's own namespace name.
      const veths = (await execIn(n.ns, ["ip", "-o", "link", "show", "type", "veth"])).stdout.split("\n").filter((l) => new RegExp(`^\\d+: ${HOST_VETH_PREFIX}[0-9a-f]+[@:]`).test(l));
      leaks.veths += Math.max(0, veths.length - podsOn(n).length);
      const podRoutes = (await execIn(n.ns, ["ip", "route", "show", "proto", "212"])).stdout.split("\n").filter(Boolean);
      leaks.routes += podRoutes.filter((l) => !live.has(l.split(" ")[0]!)).length;
      const peerCidrs = new Set(nodes.filter((o) => o !== n).map((o) => o.podCIDR));
      leaks.routes += (await execIn(n.ns, ["ip", "route", "show", "proto", "211"])).stdout.split("\n").filter(Boolean).filter((l) => !peerCidrs.has(l.split(" ")[0]!)).length;
      const ruleset = (await execIn(n.ns, ["nft", "list", "table", "inet", "twill-policy"], { allowFailure: true })).stdout;
      const elements = [...ruleset.matchAll(/elements = \{([^}]*)\}/g)].flatMap((m) => m[1]!.match(/10\.244\.\d+\.\d+/g) ?? []);
      leaks.nftElements += elements.filter((ip) => !live.has(ip)).length;
    }
    const logErrors = nodes.map((n) => readFileSync(join(n.dir, "daemon.log"), "utf8").split("\n").filter((l) => /"level":(50|60)/.test(l)).length);
    const figures: SoakFigures = {
      soak_minutes: { value: minutes, unit: "min" },
      soak_pods_created: { value: podReady.length, unit: "pods" },
      soak_policy_flips: { value: flips.length, unit: "flips" },
      soak_daemon_rss_slope: { value: round(Math.max(...samples.map((s) => slope(s.map((x) => [x.t, x.rssKiB / 1024]))))), unit: "MiB/min" },
      soak_daemon_fd_slope: { value: round(Math.max(...samples.map((s) => slope(s.map((x) => [x.t, x.fds]))))), unit: "fds/min" },
      soak_daemon_rss_end: { value: round(Math.max(...samples.map((s) => s.at(-1)!.rssKiB / 1024))), unit: "MiB" },
      soak_leaked_ips: { value: leaks.ips, unit: "addresses" },
      soak_leaked_veths: { value: leaks.veths, unit: "veths" },
      soak_leaked_routes: { value: leaks.routes, unit: "routes" },
      soak_leaked_nft_elements: { value: leaks.nftElements, unit: "elements" },
      soak_daemon_error_lines: { value: logErrors.reduce((a, b) => a + b, 0), unit: "lines" },
      soak_churn_failures: { value: errors.churnFailures, unit: "steps" },
      soak_apiserver_errors: { value: errors.apiserverErrors, unit: "requests" },
      soak_pod_ready_p99: { value: round(p99(podReady)), unit: "s" },
      soak_policy_flip_p99: { value: round(p99(flips)), unit: "s" },
    };
    return figures;
  } finally {
    await lab.close();
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;

async function removePod(core: CoreV1Api, node: LabNode, pod: LabPod): Promise<void> {
  await deletePodNetwork(node, pod);
  await core.deleteNamespacedPod({ name: pod.name, namespace: pod.namespace, gracePeriodSeconds: 0 });
  await deleteNetns(pod.ns);
}

/** A node leaves: its daemon stops, its namespace goes, its Node object is deleted. */
async function removeNode(core: CoreV1Api, node: LabNode): Promise<void> {
  for (const pid of await pidsIn(node.ns, "daemon/main.ts")) process.kill(pid, "SIGKILL");
  await core.deleteNode({ name: node.name });
  await deleteNetns(node.ns);
}

