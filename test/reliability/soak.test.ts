import { describe, expect, it } from "vitest";
import { recordFigure } from "../../lab/chaos-figures.ts";
import { runSoak } from "../../lab/soak.ts";

// A short soak (lab/soak.ts; npm run soak -- --minutes 60 is the long one): a minute of pods created and deleted,
// a policy flipped and a node joining and leaving, in a lab of its own. Nothing may leak and no churn step may fail;
// slopes and latencies are figures, not assertions.

describe("soak", () => {
  it("a minute of mixed churn leaks no address, veth, route or nft element, and no step fails", async () => {
    const f = await runSoak({ minutes: Number(process.env.TWILL_SOAK_MINUTES ?? 1), nodes: 3, log: () => {} });
    for (const [k, v] of Object.entries(f)) recordFigure(`ci_${k}`, v.value, v.unit);
    expect(f.soak_pods_created!.value).toBeGreaterThan(0);
    expect(f.soak_policy_flips!.value).toBeGreaterThan(0);
    expect({ ips: f.soak_leaked_ips!.value, veths: f.soak_leaked_veths!.value, routes: f.soak_leaked_routes!.value, nft: f.soak_leaked_nft_elements!.value, failures: f.soak_churn_failures!.value }).toEqual({ ips: 0, veths: 0, routes: 0, nft: 0, failures: 0 });
  }, 600_000);
});
