import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { sharedLab } from "../support/lab.ts";

// The daemon's health endpoints, read from inside its node's namespace (where
// a kubelet's probe would come from, on the host network).

let lab: RunningLab;
beforeAll(async () => {
  lab = await sharedLab();
});
afterAll(() => lab.close());

async function get(ns: string, path: string): Promise<{ status: number; body: string }> {
  const script = `const r = await fetch("http://127.0.0.1:9099${path}"); console.log(JSON.stringify({ status: r.status, body: await r.text() }));`;
  const out = await execIn(ns, [process.execPath, "--input-type=module", "-e", script]);
  return JSON.parse(out.stdout) as { status: number; body: string };
}

describe("daemon health", () => {
  it("is live and ready once the dataplane is programmed", async () => {
    const ns = lab.state.nodes[0]!.ns;
    expect((await get(ns, "/healthz")).status).toBe(200);
    expect(await get(ns, "/readyz")).toEqual({ status: 200, body: "ready\n" });
  });

  it("exports Prometheus metrics: reconcile duration, programmed objects, watch errors, last sync", async () => {
    const { status, body } = await get(lab.state.nodes[0]!.ns, "/metrics");
    expect(status).toBe(200);
    expect(body).toMatch(/twill_reconcile_duration_seconds_count\{controller="dataplane"\} [1-9]/);
    // Two peers: two routes, two neighbours, two FDB entries.
    expect(body).toContain('twill_programmed_objects{kind="routes"} 2');
    expect(body).toContain('twill_programmed_objects{kind="neighbours"} 2');
    expect(body).toContain("twill_apiserver_watch_errors_total");
    expect(body).toMatch(/twill_last_successful_sync_timestamp_seconds \d{10}/);
  });
});
