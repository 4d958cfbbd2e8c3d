import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderBench } from "../../bench/support/plot.ts";

// The bench plots from fixture results: real Vega-Lite → SVG rendering, read
// back through the SVG's own accessibility labels (vega writes each mark's
// data into aria-label), so a plot missing a series or a point fails.

const dir = mkdtempSync(join(tmpdir(), "obs-plot-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const f = (value: number, unit = "ms") => ({ value, unit });
function fixture(bench: string, results: Record<string, unknown>, series?: Record<string, number[]>): void {
  writeFileSync(join(dir, `${bench}.json`), JSON.stringify({ bench, measuredAt: "2026-12-04T00:00:00Z", ...results }));
  if (series) writeFileSync(join(dir, `${bench}-series.json`), JSON.stringify({ bench, series }));
}

/** Well-formed enough for any SVG consumer: one <svg> root, every element closed in order. */
function expectWellFormed(svg: string): void {
  expect(svg.startsWith("<svg")).toBe(true);
  expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    if (m[3]) continue;
    if (m[1]) expect(stack.pop()).toBe(m[2]);
    else stack.push(m[2]!);
  }
  expect(stack).toEqual([]);
}

const labels = (svg: string, role: string) => [...svg.matchAll(new RegExp(`aria-label="([^"]*)"[^>]*aria-roledescription="${role}"`, "g"))].map((m) => m[1]!);

describe("bench plots (Vega-Lite rendered to SVG)", () => {
  it("CNI latency from percentiles: a p50 dot and a p99 diamond per plugin and command, and the ratios", async () => {
    fixture("cni", { sequentialPods: 200, figures: { add_p50_ms: f(22.8), add_p99_ms: f(39.6), del_p50_ms: f(39.7), del_p99_ms: f(59.5), go_add_p50_ms: f(16), go_add_p99_ms: f(32.5), go_del_p50_ms: f(30.1), go_del_p99_ms: f(67.5), add_p50_ratio_vs_go: f(1.43, "ratio") } });
    const plots = await renderBench("cni", dir);
    expect(plots.map((p) => p.plot.name)).toEqual(["latency", "ratios"]);
    const svg = plots[0]!.svg;
    expectWellFormed(svg);
    const points = labels(svg, "point");
    expect(points).toContain("p50: 22.8; label: ADD Twill; who: Twill");
    expect(points).toContain("p99: 67.5; label: DEL Go ptp + host-local; who: Go ptp + host-local");
    expect(points).toHaveLength(8);
    const bars = labels(plots[1]!.svg, "bar");
    expect(bars).toEqual([expect.stringMatching(/^ratio .*: 1\.43; label: add p50 ÷ Go ptp \+ host-local$/)]);
  });

  it("policy flip latency from raw samples: a histogram stacked by kind of change", async () => {
    fixture("policy", { pods: 100, policies: 10, changes: 6, figures: { "flip latency p50": f(18) } }, { "flip update → deny": [10, 12, 30], "flip create → deny": [11, 90, 95] });
    const [flip, ...rest] = await renderBench("policy", dir);
    expect(rest).toEqual([]);
    expectWellFormed(flip!.svg);
    const bars = labels(flip!.svg, "bar");
    const counted = bars.reduce((n, l) => n + Number(/; changes: (\d+);/.exec(l)?.[1] ?? 0), 0);
    expect(counted).toBe(6);
    expect(bars.some((l) => l.includes("kind: update → deny"))).toBe(true);
    expect(bars.some((l) => l.includes("kind: create → deny"))).toBe(true);
  });

  it("convergence against cluster size: one line per measured time, every size a point, and each join's samples", async () => {
    const figures: Record<string, unknown> = {};
    for (const n of [100, 1000]) Object.assign(figures, { [`n${n}_register_s`]: f(n / 50, "s"), [`n${n}_all_routes_s`]: f(n / 45, "s"), [`n${n}_full_sync_s`]: f(3, "s"), [`n${n}_join_to_route_p50_ms`]: f(110), [`n${n}_join_to_route_max_ms`]: f(140) });
    fixture("convergence", { sizes: [100, 1000], figures }, { join_to_route_ms_n100: [100, 120, 140], join_to_route_ms_n1000: [105, 110] });
    const [size, join] = await renderBench("convergence", dir);
    expectWellFormed(size!.svg);
    expect(labels(size!.svg, "line mark")).toHaveLength(3);
    expect(labels(size!.svg, "point").filter((l) => /^nodes: 1,?000;/.test(l))).toHaveLength(3);
    // Two lines of percentiles with two points each, and five join samples.
    expect(labels(join!.svg, "point")).toHaveLength(4 + 5);
  });

  it("a bench without results or without a plot definition draws nothing", async () => {
    expect(await renderBench("nothing-here", dir)).toEqual([]);
  });
});
