// npm run conformance:netpol [-- <dir>] — NetworkPolicy conformance cases
// against a fresh lab: real apiserver, 3 nodes, Twill's daemons. <dir> holds
// model.json and cases/*.json; without it, Twill's own cases
// (test/policy/netpol/). Any corpus in that format runs the same way, e.g. the
// upstream-derived one checked out beside the repository:
//   npm run conformance:netpol -- ../shared/netpol-conformance
// Prints each case and `N passed, N failed` over probes; exits non-zero on any
// failure.
import { existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { CORPUS, loadCases, loadModel } from "../lab/netpol/corpus.ts";
import { ConformanceCluster } from "../lab/netpol/runner.ts";
import { startLab } from "../lab/lab.ts";

const USAGE = `usage: npm run conformance:netpol [-- DIR]
  DIR  a directory with model.json and cases/*.json (default: ${relative(process.cwd(), CORPUS) || "."}, Twill's own cases)`;

const arg = process.argv[2];
if (arg === "-h" || arg === "--help") {
  console.log(USAGE);
  process.exit(0);
}
const dir = resolve(arg ?? CORPUS);
if (!existsSync(join(dir, "model.json")) || !existsSync(join(dir, "cases"))) {
  console.error(`conformance:netpol: ${dir} has no model.json and cases/ directory\n${USAGE}`);
  process.exit(2);
}
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
