import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCases, loadModel } from "../../lab/netpol/corpus.ts";
import { ConformanceCluster } from "../../lab/netpol/runner.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { createPod, waitPolicyReady } from "../../lab/cluster.ts";
import { execIn } from "../../lib/kernel/netns.ts";

// Twill's conformance cases (test/policy/netpol/) end to end
// (lab/netpol/runner.ts): the real apiserver, pods on two nodes, Twill's
// daemons programming NetworkPolicy.

let lab: RunningLab;
let cluster: ConformanceCluster;
beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan" });
  cluster = new ConformanceCluster(lab, loadModel());
  await cluster.create();
}, 300_000);
afterAll(() => lab?.close());

describe("NetworkPolicy through the apiserver and Twill's daemons (Twill's conformance cases, pods on two nodes)", () => {
  for (const c of loadCases()) {
    it(c.name, async () => {
      const bad = (await cluster.run(c)).flatMap((s) => s.results.filter((r) => !r.ok).map((r) => `[${s.step}] ${r.probe.from} -> ${r.probe.to} ${r.probe.protocol}/${r.probe.port}: expected ${r.probe.expect}`));
      expect(bad).toEqual([]);
    });
  }
});

async function policyReadyMetric(ns: string): Promise<{ count: number; sum: number }> {
  const r = await execIn(ns, [process.execPath, "--input-type=module", "-e", "console.log(await (await fetch('http://127.0.0.1:9099/metrics')).text())"]);
  const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(r.stdout)?.[1] ?? NaN);
  return { count: num("twill_policy_ready_seconds_count"), sum: num("twill_policy_ready_seconds_sum") };
}

describe("fail closed", () => {
  it("a new pod talks to nobody until its node's daemon has programmed it; CNI ADD → ready is measured", async () => {
    const node = lab.state.nodes[1]!;
    const peer = lab.state.pods.find((p) => p.node !== node.name)!;
    const before = await policyReadyMetric(node.ns);
    const [pid] = await pidsIn(node.ns, "daemon/main.ts");
    process.kill(pid!, "SIGSTOP");
    let pod;
    try {
      pod = await createPod(lab.kc, lab.state.name, node, "fail-closed", { waitPolicy: false });
      const ready = await execIn(node.ns, ["nft", "list", "set", "inet", "twill-policy", "ready"]);
      expect(ready.stdout).not.toContain(pod.ip);
      // Both directions dropped while the daemon cannot program the pod.
      expect((await execIn(peer.ns, ["ping", "-c", "2", "-W", "1", pod.ip], { allowFailure: true })).code).not.toBe(0);
      expect((await execIn(pod.ns, ["ping", "-c", "2", "-W", "1", peer.ip], { allowFailure: true })).code).not.toBe(0);
    } finally {
      process.kill(pid!, "SIGCONT");
    }
    await waitPolicyReady(node, pod.ip);
    expect((await execIn(peer.ns, ["ping", "-c", "1", "-W", "2", pod.ip], { allowFailure: true })).code).toBe(0);
    const after = await policyReadyMetric(node.ns);
    expect(after.count).toBe(before.count + 1);
    // The daemon was stopped for the two failed pings (≥ 2 s): the observation covers that wait.
    expect(after.sum - before.sum).toBeGreaterThanOrEqual(2);
  });
});
