// npm run conformance:netpol [-- <dir>] — the NetworkPolicy conformance cases
// in <dir> (default: ../shared/netpol-conformance) against a fresh lab: real
// apiserver, 3 nodes, Twill's daemons. Reads the case format only. Prints each
// case and `N passed, N failed` over probes; exits non-zero on any failure.
import { resolve } from "node:path";
import { CORPUS, loadCases, loadModel } from "../lab/netpol/corpus.ts";
import { ConformanceCluster } from "../lab/netpol/runner.ts";
import { startLab } from "../lab/lab.ts";

const dir = resolve(process.argv[2] ?? CORPUS);
const cases = loadCases(dir);
console.log(`NetworkPolicy conformance: ${cases.length} cases from ${dir}`);
const lab = await startLab({ nodes: 3, podsPerNode: 1, backend: "vxlan", log: (m) => console.log(`[lab] ${m}`) });
let passed = 0;
let failed = 0;
try {
  const cluster = new ConformanceCluster(lab, loadModel(dir));
  await cluster.create();
  for (const c of cases) {
    const t0 = performance.now();
    const steps = await cluster.run(c);
    const bad = steps.flatMap((s) => s.results.filter((r) => !r.ok).map((r) => `    [${s.step}] ${r.probe.from} -> ${r.probe.to} ${r.probe.protocol}/${r.probe.port}: expected ${r.probe.expect}`));
    const n = steps.reduce((k, s) => k + s.results.length, 0);
    passed += n - bad.length;
    failed += bad.length;
    console.log(`${bad.length === 0 ? "PASS" : "FAIL"} ${c.name} (${n} probes, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    for (const line of bad) console.log(line);
  }
} finally {
  await lab.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
