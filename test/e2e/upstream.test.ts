import { describe, expect, it } from "vitest";
import { CI_EXPECTED, CI_FOCUS, DEFAULT_SKIP } from "../../lab/e2e/suites.ts";
import { runUpstreamE2e } from "../../lab/e2e/run.ts";

// Upstream's own network specs as the judge, in CI: the runner behind
// `npm run e2e` with the CI subset (lab/e2e/suites.ts), on a lab of its own
// (2 kubelet nodes, Twill's DaemonSet, vxlan). Every selected spec must pass,
// and exactly as many must have run as the subset names: a spec renamed
// upstream, or a focus that silently matches less, fails here.

describe("upstream e2e: the CI subset", () => {
  it(
    "every focused spec runs and passes",
    async () => {
      const r = await runUpstreamE2e({ focus: CI_FOCUS, skip: DEFAULT_SKIP, backend: "vxlan", proxyMode: "nftables", nodes: 2, timeoutMinutes: 30, log: (m) => console.log(`[e2e] ${m}`), onSpec: (s) => console.log(`[e2e] ${s.state} ${s.seconds.toFixed(1)} s ${s.name}`) });
      const failed = r.specs.filter((s) => s.outcome !== "passed").map((s) => `${s.name}: ${s.outcome}${s.message ? ` — ${s.message}` : ""}`);
      expect(failed, r.keptDir ? `logs kept in ${r.keptDir}` : undefined).toEqual([]);
      expect(r.missing).toEqual([]);
      // Every image a spec ran was the lab's own: nothing was pulled.
      expect(r.pulled).toEqual([]);
      expect(r.expected).toBe(CI_EXPECTED);
      expect(r.specs.length).toBe(CI_EXPECTED);
      expect(r.exitCode).toBe(0);
    },
    // Lab up ~1 min, the subset a few minutes, teardown seconds; the bound only stops a hang.
    1_800_000,
  );
});
