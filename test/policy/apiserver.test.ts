import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCases, loadModel } from "../../lab/netpol/corpus.ts";
import { ConformanceCluster } from "../../lab/netpol/runner.ts";
import { startLab, type RunningLab } from "../../lab/lab.ts";

// The conformance corpus end to end (lab/netpol/runner.ts): the real
// apiserver, pods on two nodes, Twill's daemons programming NetworkPolicy.

let lab: RunningLab;
let cluster: ConformanceCluster;
beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan" });
  cluster = new ConformanceCluster(lab, loadModel());
  await cluster.create();
}, 300_000);
afterAll(() => lab?.close());

describe("NetworkPolicy through the apiserver and Twill's daemons (conformance corpus, pods on two nodes)", () => {
  for (const c of loadCases()) {
    it(c.name, async () => {
      const bad = (await cluster.run(c)).flatMap((s) => s.results.filter((r) => !r.ok).map((r) => `[${s.step}] ${r.probe.from} -> ${r.probe.to} ${r.probe.protocol}/${r.probe.port}: expected ${r.probe.expect}`));
      expect(bad).toEqual([]);
    });
  }
});
