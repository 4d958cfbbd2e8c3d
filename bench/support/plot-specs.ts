import type { TopLevelSpec } from "vega-lite";
import type { BenchResults, Plot, Series } from "./plot.ts";

// What each bench's plots show, as Vega-Lite specs built from its figures
// (bench-results/<bench>.json) and, where the bench keeps them, its raw
// samples (<bench>-series.json): distributions are drawn from samples when
// there are some, from the percentiles otherwise. A figure a result lacks is
// left out of its plot; a plot with nothing to show is not drawn.

type Row = Record<string, string | number>;
const TWILL = "#1f77b4";
const REFERENCE = "#9e9e9e";

const value = (r: BenchResults, key: string): number | undefined => {
  const v = r.figures[key]?.value;
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
};

/** Rows for the figures that exist. */
function rows<T extends Row>(items: (T | undefined)[]): T[] {
  return items.filter((x): x is T => x !== undefined);
}

const loadNote = (r: BenchResults) => {
  const load = r.loadAvg1m ?? r.loadavg;
  const text = Array.isArray(load) ? load.join("; ") : typeof load === "string" || typeof load === "number" ? String(load) : undefined;
  return `measured ${String(r.measuredAt ?? "").slice(0, 10)}${text ? `, load ${text}` : ""}`;
};

/** p50 as a dot, p99 as a diamond, joined by a rule: a distribution from its percentiles. */
function percentileRanges(title: string, data: Row[], unit: string, subtitle: string): TopLevelSpec {
  return {
    title: { text: title, subtitle },
    data: { values: data },
    encoding: { y: { field: "label", type: "nominal", title: null, sort: null }, color: { field: "who", type: "nominal", title: null, sort: null, scale: { range: [TWILL, REFERENCE, "#ff7f0e", "#2ca02c"] } } },
    layer: [
      { transform: [{ filter: "isValid(datum.p99)" }], mark: { type: "rule", strokeWidth: 2 }, encoding: { x: { field: "p50", type: "quantitative", title: `${unit} (dot p50, diamond p99)` }, x2: { field: "p99" } } },
      { mark: { type: "point", filled: true, size: 70 }, encoding: { x: { field: "p50", type: "quantitative" } } },
      { transform: [{ filter: "isValid(datum.p99)" }], mark: { type: "point", shape: "diamond", filled: true, size: 70 }, encoding: { x: { field: "p99", type: "quantitative" } } },
    ],
  } as TopLevelSpec;
}

/** Empirical CDFs of raw samples, one line per series. */
function ecdf(title: string, series: Series, names: string[], unit: string, subtitle: string): TopLevelSpec | undefined {
  const values = names.flatMap((name) => (series[name] ?? []).map((v) => ({ series: name, v })));
  if (values.length === 0) return undefined;
  return {
    title: { text: title, subtitle },
    data: { values },
    transform: [
      { window: [{ op: "cume_dist", as: "fraction" }], sort: [{ field: "v" }], groupby: ["series"] },
    ],
    mark: { type: "line", interpolate: "step-after" },
    encoding: {
      x: { field: "v", type: "quantitative", title: unit },
      y: { field: "fraction", type: "quantitative", title: "fraction of samples ≤ x", axis: { format: "%" } },
      color: { field: "series", type: "nominal", title: null },
    },
  } as TopLevelSpec;
}

/** Bars of ratios against the in-run reference, with their 95% intervals where the bench gives them, and a rule at 1. */
function ratioBars(title: string, data: Row[], subtitle: string): TopLevelSpec {
  return {
    title: { text: title, subtitle },
    data: { values: data },
    layer: [
      { mark: { type: "bar", color: TWILL, height: { band: 0.7 } }, encoding: { y: { field: "label", type: "nominal", title: null, sort: null }, x: { field: "ratio", type: "quantitative", title: "ratio (1 = the reference; whiskers: 95% interval)" } } },
      { transform: [{ filter: "isValid(datum.low)" }], mark: { type: "rule", color: "black" }, encoding: { y: { field: "label", type: "nominal", sort: null }, x: { field: "low", type: "quantitative" }, x2: { field: "high" } } },
      { mark: { type: "rule", strokeDash: [4, 3], color: "#d62728" }, encoding: { x: { datum: 1, type: "quantitative" } } },
    ],
  } as TopLevelSpec;
}

/** bench:cni's references, by the prefix of their figures. */
const CNI_REFERENCES: [prefix: string, label: string][] = [
  ["go", "Go ptp + host-local"],
  ["flannel", "Flannel (bridge + host-local)"],
];

function cni(r: BenchResults, s?: Series): Plot[] {
  const sub = `${r.sequentialPods ?? "?"} pods one after another; ${loadNote(r)}`;
  const out: Plot[] = [];
  const fromSamples = s && ecdf("CNI ADD and DEL latency", s, Object.keys(s), "ms", sub);
  const range = (label: string, who: string, key: string): Row | undefined =>
    value(r, `${key}_p50_ms`) !== undefined ? { label, who, p50: value(r, `${key}_p50_ms`)!, ...(value(r, `${key}_p99_ms`) !== undefined ? { p99: value(r, `${key}_p99_ms`)! } : {}) } : undefined;
  const dist = rows(
    (["add", "del"] as const).flatMap((c) => [range(`${c.toUpperCase()} Twill`, "Twill", c), ...CNI_REFERENCES.map(([ref, label]) => range(`${c.toUpperCase()} ${label}`, label, `${ref}_${c}`))]),
  );
  const par = rows([range(`Twill (${r.parallelPods ?? "?"} at once)`, "Twill", "parallel_per_pod"), ...CNI_REFERENCES.map(([ref, label]) => range(label, label, `${ref}_parallel_per_pod`))]);
  if (fromSamples) out.push({ name: "latency", title: "CNI ADD/DEL latency distribution", spec: fromSamples });
  else if (dist.length) out.push({ name: "latency", title: "CNI ADD/DEL latency, p50 and p99", spec: percentileRanges("CNI ADD and DEL latency", dist, "ms", sub) });
  if (par.length) out.push({ name: "parallel", title: "CNI ADD under parallel load, p50 and p99", spec: percentileRanges("Parallel CNI ADD, per pod", par, "ms", sub) });
  const ratios = rows(
    Object.keys(r.figures).flatMap((k) => {
      const m = /^(.*)_ratio_vs_(go|flannel)$/.exec(k);
      return m ? [{ label: `${m[1]!.replaceAll("_", " ")} ÷ ${CNI_REFERENCES.find(([p]) => p === m[2])![1]}`, ratio: value(r, k)! }] : [];
    }),
  );
  if (ratios.length) out.push({ name: "ratios", title: "CNI latency and CPU ratios, Twill / each reference (lower is better)", spec: ratioBars("CNI, Twill ÷ the reference plugins (lower is better)", ratios, sub) });
  return out;
}

function dataplane(r: BenchResults): Plot[] {
  const sub = `iperf3 TCP, ${r.runs ?? "?"} runs of ${r.seconds ?? "?"} s, medians; ${loadNote(r)}`;
  const gbps = Object.keys(r.figures)
    .filter((k) => k.endsWith("_gbps"))
    .map((k) => ({ label: k.replace(/_gbps$/, "").replaceAll("_", " "), who: k.startsWith("twill") ? "Twill" : "reference", gbps: value(r, k)! }))
    .filter((x) => x.gbps !== undefined);
  const ratios = Object.keys(r.figures)
    .filter((k) => k.includes("_ratio_vs_") && !k.includes("_ci95_"))
    .map((k) => ({ label: k.replace("_ratio_vs_", " / ").replaceAll("_", " "), ratio: value(r, k)!, ...(value(r, `${k}_ci95_low`) !== undefined ? { low: value(r, `${k}_ci95_low`)!, high: value(r, `${k}_ci95_high`)! } : {}) }));
  const out: Plot[] = [];
  if (gbps.length)
    out.push({
      name: "throughput",
      title: "Pod-to-pod TCP throughput",
      spec: {
        title: { text: "Pod-to-pod TCP throughput", subtitle: sub },
        data: { values: gbps },
        mark: { type: "bar" },
        encoding: { y: { field: "label", type: "nominal", title: null, sort: null }, x: { field: "gbps", type: "quantitative", title: "Gbit/s" }, color: { field: "who", type: "nominal", title: null, scale: { domain: ["Twill", "reference"], range: [TWILL, REFERENCE] } } },
      } as TopLevelSpec,
    });
  if (ratios.length) out.push({ name: "ratios", title: "Throughput ratios against hand-built references, with 95% intervals", spec: ratioBars("Throughput, Twill / the same path built by hand", ratios, sub) });
  return out;
}

function convergence(r: BenchResults, s?: Series): Plot[] {
  const sizes = (r.sizes as number[] | undefined) ?? [];
  const sub = `simulated nodes registered in a real apiserver; ${loadNote(r)}`;
  const lines = sizes.flatMap((n) =>
    rows([
      value(r, `n${n}_all_routes_s`) !== undefined ? { nodes: n, what: "every route programmed", s: value(r, `n${n}_all_routes_s`)! } : undefined,
      value(r, `n${n}_register_s`) !== undefined ? { nodes: n, what: "all nodes registered (the apiserver's part)", s: value(r, `n${n}_register_s`)! } : undefined,
      value(r, `n${n}_full_sync_s`) !== undefined ? { nodes: n, what: "daemon restart → full sync", s: value(r, `n${n}_full_sync_s`)! } : undefined,
    ]),
  );
  const out: Plot[] = [];
  if (lines.length)
    out.push({
      name: "size",
      title: "Convergence against cluster size",
      spec: {
        title: { text: "Convergence against cluster size", subtitle: sub },
        data: { values: lines },
        mark: { type: "line", point: true },
        encoding: { x: { field: "nodes", type: "quantitative", scale: { type: "log", nice: false }, title: "nodes" }, y: { field: "s", type: "quantitative", scale: { type: "log" }, title: "seconds" }, color: { field: "what", type: "nominal", title: null }, strokeDash: { field: "what", type: "nominal", title: null } },
      } as TopLevelSpec,
    });
  const samples = sizes.flatMap((n) => (s?.[`join_to_route_ms_n${n}`] ?? []).map((ms) => ({ nodes: n, ms })));
  const joins = sizes.flatMap((n) =>
    rows([
      value(r, `n${n}_join_to_route_p50_ms`) !== undefined ? { nodes: n, what: "p50", ms: value(r, `n${n}_join_to_route_p50_ms`)! } : undefined,
      value(r, `n${n}_join_to_route_max_ms`) !== undefined ? { nodes: n, what: "max", ms: value(r, `n${n}_join_to_route_max_ms`)! } : undefined,
    ]),
  );
  if (joins.length)
    out.push({
      name: "join",
      title: "A node joining → its route on an existing node",
      spec: {
        title: { text: "Node join → route on an existing node", subtitle: `${samples.length ? "dots: every join; " : ""}${sub}` },
        layer: [
          { data: { values: joins }, mark: { type: "line", point: true }, encoding: { x: { field: "nodes", type: "quantitative", scale: { type: "log", nice: false }, title: "nodes already in the cluster" }, y: { field: "ms", type: "quantitative", title: "ms" }, color: { field: "what", type: "nominal", title: null } } },
          ...(samples.length ? [{ data: { values: samples }, mark: { type: "point", opacity: 0.5, color: "black" }, encoding: { x: { field: "nodes", type: "quantitative" }, y: { field: "ms", type: "quantitative" } } }] : []),
        ],
      } as TopLevelSpec,
    });
  return out;
}

const POD_STAGES: [string, string][] = [
  ["atScheduled", "scheduled"],
  ["atSandbox", "sandbox started"],
  ["atCniStart", "CNI ADD starts"],
  ["atCniEnd", "CNI ADD ends"],
  ["atPolicy", "policy in the kernel"],
  ["atReady", "Ready"],
];

function pods(r: BenchResults, s?: Series): Plot[] {
  const sub = `${r.pods ?? "?"} pods, ${r.parallel ?? "?"} at a time, ${r.nodes ?? "?"} nodes; ${loadNote(r)}`;
  const out: Plot[] = [];
  const stages = rows(POD_STAGES.map(([k, label]) => (value(r, `${k}P50`) !== undefined ? { label, who: "Twill", p50: value(r, `${k}P50`)!, p99: value(r, `${k}P99`) ?? value(r, `${k}P50`)! } : undefined)));
  if (stages.length) out.push({ name: "timeline", title: "A pod's start-up timeline (ms after creation), p50 and p99", spec: percentileRanges("Pod start-up: when each stage is reached", stages, "ms after the Pod is created", sub) });
  const dist = s && ecdf("Pod start-up latency", s, ["ready_ms", "cni_add_ms", "delete_ms"].filter((k) => s[k]), "ms", sub);
  if (dist) out.push({ name: "latency", title: "Pod latency distributions (create → Ready, CNI ADD, delete)", spec: dist });
  return out;
}

function bgp(r: BenchResults): Plot[] {
  const sizes = (r.sizes as number[] | undefined) ?? [];
  const sub = `a feed of N prefixes from one peer into the node's kernel; ${loadNote(r)}`;
  const pts = sizes.flatMap((n) =>
    rows([
      value(r, `twill.${n}.kernel`) !== undefined ? { prefixes: n, who: "Twill", s: value(r, `twill.${n}.kernel`)! } : undefined,
      value(r, `bird.${n}.kernel`) !== undefined ? { prefixes: n, who: "BIRD 2", s: value(r, `bird.${n}.kernel`)! } : undefined,
    ]),
  );
  if (!pts.length) return [];
  return [
    {
      name: "feed",
      title: "BGP feed → routes in the kernel, against table size",
      spec: {
        title: { text: "BGP feed → every route in the kernel", subtitle: sub },
        data: { values: pts },
        mark: { type: "line", point: true },
        encoding: { x: { field: "prefixes", type: "quantitative", scale: { type: "log", nice: false }, title: "prefixes" }, y: { field: "s", type: "quantitative", title: "seconds" }, color: { field: "who", type: "nominal", title: null, scale: { range: [REFERENCE, TWILL] } } },
      } as TopLevelSpec,
    },
  ];
}

function policy(r: BenchResults, s?: Series): Plot[] {
  const sub = `${r.pods ?? "?"} pods, ${r.policies ?? "?"} policies, ${r.changes ?? "?"} changes; ${loadNote(r)}`;
  const samples = s ? Object.entries(s).flatMap(([kind, v]) => (kind.startsWith("flip ") ? v.map((ms) => ({ kind: kind.slice(5), ms })) : [])) : [];
  if (samples.length)
    return [
      {
        name: "flip",
        title: "Policy change → verdict flip latency",
        spec: {
          title: { text: "Policy change → verdict flip", subtitle: sub },
          data: { values: samples },
          mark: { type: "bar" },
          encoding: { x: { field: "ms", type: "quantitative", bin: { maxbins: 40 }, title: "ms from the change sent to the apiserver to the probe's verdict flipping" }, y: { aggregate: "count", type: "quantitative", title: "changes", stack: true }, color: { field: "kind", type: "nominal", title: null } },
        } as TopLevelSpec,
      },
    ];
  const p50Only = (label: string, key: string) => (value(r, key) !== undefined ? { label, who: "Twill", p50: value(r, key)! } : undefined);
  const pct = rows<Row>([
    value(r, "flip latency p50") !== undefined ? { label: "all changes", who: "Twill", p50: value(r, "flip latency p50")!, ...(value(r, "flip latency p99") !== undefined ? { p99: value(r, "flip latency p99")! } : {}) } : undefined,
    p50Only("policy updates (allow ⇄ deny)", "flip latency p50, update"),
    p50Only("policy create / delete", "flip latency p50, create/delete"),
    p50Only("daemon: compile + nft apply", "daemon apply p50 (compile + nft)"),
    p50Only("daemon: compile", "daemon compile p50"),
  ]);
  return pct.length ? [{ name: "flip", title: "Policy change → verdict flip latency, p50 and p99", spec: percentileRanges("Policy change → verdict flip", pct, "ms", sub) }] : [];
}

const BY_BENCH: Record<string, (r: BenchResults, s?: Series) => Plot[]> = { cni, dataplane, convergence, pods, bgp, policy };

export const PLOTTED_BENCHES = Object.keys(BY_BENCH);

export function benchPlots(bench: string, results: BenchResults, series?: Series): Plot[] {
  return BY_BENCH[bench]?.(results, series) ?? [];
}
