import { join } from "node:path";
import { mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IpamSweeper } from "../../daemon/ipam/controller.ts";
import { readRecords } from "../../daemon/ipam/sweep.ts";
import type { LabNode } from "../../lab/cluster.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { IpamStore } from "../../lib/ipam/store.ts";
import { createLogger } from "../../lib/log.ts";
import { REPO, runCni } from "../support/cni.ts";
import { sharedLab } from "../support/lab.ts";
import { until } from "../support/until.ts";
import { recordFigure } from "../../lab/chaos-figures.ts";

// The daemon's IPAM sweep against the real apiserver: Pods bound to node1 in
// a namespace of this file's own, and records written by the real twill-ipam
// executable (other processes) into a data dir of this file's own, from a
// slice of node1's pod CIDR (the IPAM plugin alone creates no kernel state).
// The sweeper is the daemon's own class with its node-pod watch.

const HOUR = 3_600_000;
const GRACE_S = 20;
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const namespace = `rel-ipam-${process.pid}`;

let lab: RunningLab;
let core: CoreV1Api;
let node: LabNode;
let dataDir: string;
let sweeper: IpamSweeper;
let registry: Registry;

/** twill-ipam ADD for `containerId`, from .200–.250 of node1's pod CIDR; returns the address. */
async function ipamAdd(containerId: string): Promise<string> {
  const prefix = node.podCIDR.split(".").slice(0, 3).join(".");
  const conf = { cniVersion: "1.1.0", name: "twill", type: "twill-ipam", ipam: { type: "twill-ipam", dataDir, ranges: [[{ subnet: node.podCIDR, rangeStart: `${prefix}.200`, rangeEnd: `${prefix}.250` }]] } };
  const r = await runCni(node.ns, { command: "ADD", containerId, netns: "/proc/self/ns/net", ifname: "eth0", stdin: conf, bin: join(REPO, "dist/cni/twill-ipam") });
  if (r.code !== 0) throw new Error(`twill-ipam ADD failed: ${r.stdout}${r.stderr}`);
  return String(r.json.ips[0].address).split("/")[0]!;
}

/** The Pod as the kubelet makes it: bound to node1; its IP reported after the CNI ADD. */
async function createPodObject(name: string): Promise<void> {
  await core.createNamespacedPod({ namespace, body: { metadata: { name, namespace }, spec: { nodeName: node.name, automountServiceAccountToken: false, containers: [{ name: "app", image: "twill-lab/netns" }] } } });
}
async function reportIp(name: string, ip: string): Promise<void> {
  await core.patchNamespacedPodStatus({ name, namespace, body: { status: { phase: "Running", podIP: ip, podIPs: [{ ip }] } } }, merge);
}

const held = () => new Map(readRecords(dataDir).map((r) => [r.ip, r.containerId]));

beforeAll(async () => {
  lab = await sharedLab();
  core = lab.kc.makeApiClient(CoreV1Api);
  node = lab.state.nodes[0]!;
  dataDir = mkdtempSync(join(tmpdir(), "rel-ipam-sweep-"));
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await until("the namespace's default ServiceAccount", async () => !!(await core.readNamespacedServiceAccount({ name: "default", namespace }).catch(() => undefined)));
  registry = new Registry();
  sweeper = new IpamSweeper({ kc: lab.kc, log: createLogger({ name: "rel-ipam", level: "silent" }), registry, nodeName: node.name, ipamDir: dataDir, podCidrs: () => [node.podCIDR], graceSeconds: GRACE_S, intervalSeconds: 3600, onWatchError: () => {} });
  await until("the sweeper's pod watch to list", async () => sweeper.ready());
});
afterAll(async () => {
  sweeper?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => {});
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  await lab?.close();
});

describe("daemon IPAM sweep", () => {
  it("never frees a pod's address while pods are created during sweeps: the ADD's record precedes the pod's IP in the apiserver", async () => {
    let sweeps = 0;
    let stop = false;
    const freed: string[] = [];
    // Sweeps back to back (each reads every record and the watch's pods) while pods come up.
    let sweepMs = 0;
    const loop = (async () => {
      while (!stop) {
        const t = performance.now();
        freed.push(...sweeper.sweepOnce());
        sweepMs += performance.now() - t;
        sweeps++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const pods: { name: string; ip: string }[] = [];
    for (let i = 0; i < 8; i++) {
      const name = `race-${i}`;
      await createPodObject(name);
      const ip = await ipamAdd(`rel-race-${process.pid}-${i}`);
      // The kubelet reports the IP a moment after the ADD: the window the grace period covers.
      await new Promise((r) => setTimeout(r, 300));
      await reportIp(name, ip);
      pods.push({ name, ip });
    }
    // One whose IP is never reported (the kubelet died after the ADD): still within the grace period.
    const unreported = await ipamAdd(`rel-unreported-${process.pid}`);
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await loop;
    recordFigure("ipam_sweep_race_sweeps", sweeps, "sweeps", "back to back while 9 ADDs ran");
    recordFigure("ipam_sweep_race_freed", freed.length, "addresses");
    recordFigure("ipam_sweep_mean_ms", Math.round((sweepMs / sweeps) * 100) / 100, "ms", "one sweep of up to 9 records and the node's pods");
    expect(sweeps).toBeGreaterThan(50);
    expect(freed).toEqual([]);
    const have = held();
    for (const p of pods) expect(have.get(p.ip)).toBe(`rel-race-${process.pid}-${pods.indexOf(p)}`);
    expect(have.has(unreported)).toBe(true);
  });

  it("releases, after the grace period, only the addresses no pod on the node holds: a deleted pod's, a never-reported one's", async () => {
    const raceIps = [...held()].filter(([, c]) => c.startsWith(`rel-race-${process.pid}-`)).map(([ip]) => ip);
    await until("the watch to carry the race pods' IPs", async () => raceIps.every((ip) => sweeper.livePodIps().has(ip)));
    const store = new IpamStore(join(dataDir, "twill"));
    // A sandbox that died without CNI DEL an hour ago (its Pod gone), and a pod deleted just now.
    const orphan = await ipamAdd(`rel-orphan-${process.pid}`);
    utimesSync(join(store.dir, orphan), new Date(Date.now() - HOUR), new Date(Date.now() - HOUR));
    const gone = held();
    const deletedIp = [...gone].find(([, c]) => c === `rel-race-${process.pid}-0`)![0];
    await core.deleteNamespacedPod({ name: "race-0", namespace, gracePeriodSeconds: 0 });
    await until("the watch to drop the deleted pod", async () => !sweeper.livePodIps().has(deletedIp));
    const live = [...held()].filter(([, c]) => c.startsWith(`rel-race-${process.pid}-`) && c !== `rel-race-${process.pid}-0`).map(([ip]) => ip);
    expect(live).toHaveLength(7);
    // The first sweep only marks candidates; the orphan is old, so nothing is young-protected from here on.
    const t = Date.now() + 2 * HOUR;
    expect(sweeper.sweepOnce(t)).toEqual([]);
    expect(await registry.getSingleMetricAsString("twill_ipam_leak_candidates")).toMatch(/ 3$/m);
    expect(sweeper.sweepOnce(t + GRACE_S * 1000 - 1)).toEqual([]);
    const unreported = [...held()].find(([, c]) => c === `rel-unreported-${process.pid}`)![0];
    const released = sweeper.sweepOnce(t + GRACE_S * 1000).sort();
    recordFigure("ipam_sweep_released_after_grace", released.length, "addresses", "of 10 records: 1 orphan, 1 deleted pod, 1 never reported; 7 live kept");
    expect(released).toEqual([orphan, deletedIp, unreported].sort());
    const after = held();
    for (const ip of live) expect(after.has(ip)).toBe(true);
    expect([...after.keys()].sort()).toEqual([...live].sort());
    expect(await registry.getSingleMetricAsString("twill_ipam_released_total")).toMatch(/ 3$/m);
  });
});
