import type { RulesetCounts } from "./ruleset.ts";
import { barChart, type Figure } from "./report.ts";
import { median, percentile, round } from "./stats.ts";

// bench:services' figures (bench-results/services.json) and its section of
// docs/benchmarks.md, from the runs' raw samples, so a saved run can be
// rendered again (npm run bench:services -- --report).

/** One proxy at one size; the samples as measured (saved whole in the JSON). */
export interface RunResult {
  proxy: string;
  size: number;
  error?: string;
  syncS?: number;
  /** Whether the listing held every Service's ClusterIP when the last-created one first answered. */
  syncConfirmedAtProbe?: boolean;
  changeMs?: number[];
  changeApiMs?: number[];
  /** Events (nft monitor lines) in each change's transaction: how big a one-endpoint change is in the kernel. */
  changeEvents?: number[];
  counts?: RulesetCounts;
  rssSyncMiB?: number;
  rssChangesMiB?: number;
  firstPacketUs?: { roundMedians: number[]; p50: number; p99: number };
  connPerSec?: number[];
  load: Record<string, string>;
}

export interface Params {
  sizes: number[];
  changes: number;
  concurrency: number;
  rateSeconds: number;
  latencyCount: number;
  rounds: number;
  reference: string;
  notRun: Record<string, string>;
  measuredAt: string;
  /** When the sizes were measured in separate runs (each size's rows and ratios still come from one run). */
  parts?: { measuredAt: string; sizes: number[] }[];
}

const K = {
  sync: "full sync",
  p50: "one EndpointSlice change → kernel p50",
  p99: "one EndpointSlice change → kernel p99",
  events: "kernel events per change (median)",
  rules: "nft rules",
  chains: "nft chains",
  sets: "nft sets and maps",
  elements: "nft set and map elements",
  rss: "RSS after full sync",
  rssChanges: "RSS after changes",
  rate: "new connections per second",
  fp50: "first-packet latency p50",
  fp99: "first-packet latency p99",
} as const;

/** What a run measured; a run that failed part-way keeps the figures of the phases it finished. */
function summary(r: RunResult): Record<string, Figure> {
  const f: Record<string, Figure> = {};
  if (r.syncS !== undefined) f[K.sync] = { value: round(r.syncS, 3), unit: "s" };
  if (r.counts) {
    f[K.rules] = { value: r.counts.rules, unit: "rules" };
    f[K.chains] = { value: r.counts.chains, unit: "chains" };
    f[K.sets] = { value: r.counts.sets + r.counts.maps, unit: "sets" };
    f[K.elements] = { value: r.counts.elements, unit: "elements" };
  }
  if (r.rssSyncMiB !== undefined) f[K.rss] = { value: round(r.rssSyncMiB, 1), unit: "MiB" };
  // The changes count only when all of them reached the kernel (a failed one would leave its latency out).
  if (r.changeMs?.length && r.rssChangesMiB !== undefined) {
    f[K.p50] = { value: round(percentile(r.changeMs, 50), 1), unit: "ms" };
    f[K.p99] = { value: round(percentile(r.changeMs, 99), 1), unit: "ms" };
    if (r.changeEvents?.length) f[K.events] = { value: median(r.changeEvents), unit: "events" };
    f[K.rssChanges] = { value: round(r.rssChangesMiB, 1), unit: "MiB" };
  }
  if (r.connPerSec?.length) f[K.rate] = { value: round(median(r.connPerSec), 0), unit: "connections/s" };
  if (r.firstPacketUs) {
    f[K.fp50] = { value: round(r.firstPacketUs.p50, 0), unit: "µs" };
    f[K.fp99] = { value: round(r.firstPacketUs.p99, 0), unit: "µs" };
  }
  return f;
}

const figureName = (proxy: string, size: number, k: string) => `${proxy}, ${size} Services: ${k}`;
const ratioName = (proxy: string, reference: string, size: number, k: string) => `ratio ${proxy} ÷ ${reference}, ${size} Services: ${k}`;
const flatName = (proxy: string, lo: number, hi: number) => `ratio first-packet latency p50 ${hi} ÷ ${lo} Services, ${proxy}`;

/** Every figure of every run, every ratio against the reference at the same size, and first packet's growth per proxy. */
export function figures(results: RunResult[], p: Params): Record<string, Figure> {
  const fig: Record<string, Figure> = {};
  for (const r of results) for (const [k, v] of Object.entries(summary(r))) fig[figureName(r.proxy, r.size, k)] = v;
  for (const r of results) {
    const ref = results.find((x) => x.proxy === p.reference && x.size === r.size);
    if (!ref || r.proxy === p.reference) continue;
    const a = summary(r);
    const b = summary(ref);
    for (const k of Object.keys(a)) if (b[k]?.value) fig[ratioName(r.proxy, p.reference, r.size, k)] = { value: round(a[k]!.value / b[k]!.value, 3), unit: "ratio" };
  }
  const [lo, hi] = [p.sizes[0]!, p.sizes[p.sizes.length - 1]!];
  for (const id of new Set(results.map((r) => r.proxy))) {
    const a = summary(results.find((r) => r.proxy === id && r.size === lo) ?? { proxy: id, size: lo, load: {} })[K.fp50];
    const b = summary(results.find((r) => r.proxy === id && r.size === hi) ?? { proxy: id, size: hi, load: {} })[K.fp50];
    if (a && b && lo !== hi) fig[flatName(id, lo, hi)] = { value: round(b.value / a.value, 3), unit: "ratio" };
  }
  return fig;
}

/** The issue's goals for Twill, as ratios to the reference: [figure, size (largest when undefined: all sizes), goal text, met]. */
const GOALS: { k: string; only?: "largest"; text: string; met: (v: number) => boolean }[] = [
  { k: K.p99, text: "≤ 0.5×", met: (v) => v <= 0.5 },
  { k: K.sync, only: "largest", text: "≤ 0.5× at the largest size", met: (v) => v <= 0.5 },
  { k: K.rate, text: "≥ 1.0×", met: (v) => v >= 1.0 },
  { k: K.rss, text: "≤ 1.0×", met: (v) => v <= 1.0 },
];

const n = (v: number | undefined) => (v === undefined ? "–" : String(v));

export function report(results: RunResult[], fig: Record<string, Figure>, p: Params, complete: boolean): string {
  const { sizes, reference } = p;
  const hi = sizes[sizes.length - 1]!;
  const lo = sizes[0]!;
  const notRun = Object.entries(p.notRun);
  const tables = sizes.map((size) => {
    const rows = results.filter((r) => r.size === size).map((r) => {
      if (!Object.keys(summary(r)).length) return `| ${r.proxy} | failed: ${r.error ?? "no samples"} |||||||||`;
      const f = (k: string) => n(fig[figureName(r.proxy, size, k)]?.value);
      return `| ${r.proxy}${r.error ? ` (failed after the phases shown: ${r.error})` : ""} | ${f(K.sync)} | ${f(K.p50)} / ${f(K.p99)} | ${f(K.events)} | ${f(K.rules)} / ${f(K.chains)} | ${f(K.sets)} / ${f(K.elements)} | ${f(K.rss)} / ${f(K.rssChanges)} | ${f(K.rate)} | ${f(K.fp50)} / ${f(K.fp99)} | ${r.load.sync ?? "–"} · ${r.load.changes ?? "–"} · ${r.load.rate ?? "–"} |`;
    });
    for (const [id, why] of notRun) rows.push(`| ${id} | not run: ${why} |||||||||`);
    return `### ${size.toLocaleString("en")} Services

| proxy | full sync (s) | change → kernel p50 / p99 (ms) | kernel events per change | rules / chains | sets+maps / elements | RSS after sync / after changes (MiB) | new conn/s | first packet p50 / p99 (µs) | load (sync · changes · rate) |
|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}`;
  });
  const cols = [K.sync, K.p50, K.p99, K.rules, K.elements, K.rss, K.rate, K.fp50] as const;
  const others = [...new Set(results.map((r) => r.proxy))].filter((id) => id !== reference);
  const ratioRows = sizes.flatMap((size) => others.filter((id) => cols.some((k) => fig[ratioName(id, reference, size, k)])).map((id) => `| ${id}, ${size.toLocaleString("en")} | ${cols.map((k) => n(fig[ratioName(id, reference, size, k)]?.value)).join(" | ")} |`));
  const goalRows = GOALS.flatMap((g) => (g.only ? [hi] : sizes).map((size) => {
    const v = fig[ratioName("Twill", reference, size, g.k)]?.value;
    return `| ${g.k}, ${size.toLocaleString("en")} Services | ${v === undefined ? "not measured" : `${v}×`} | ${g.text} | ${v === undefined ? "–" : g.met(v) ? "met" : "not met"} |`;
  }));
  const flat = fig[flatName("Twill", lo, hi)]?.value;
  goalRows.push(`| first-packet latency p50, ${hi.toLocaleString("en")} ÷ ${lo.toLocaleString("en")} Services | ${flat === undefined ? "not measured" : `${flat}×`} | flat (≈ 1×) | ${flat === undefined ? "–" : `kube-proxy: ${others.concat(reference).filter((id) => id !== "Twill").map((id) => `${id} ${n(fig[flatName(id, lo, hi)]?.value)}×`).join(", ")}`} |`);
  const bars = results.filter((r) => r.size === hi && fig[figureName(r.proxy, hi, K.p99)]).map((r) => ({ label: r.proxy, value: fig[figureName(r.proxy, hi, K.p99)]!.value }));
  return `## Service proxies (\`npm run bench:services\`)
${complete ? "" : "\n**Partial: the run did not finish; the rows below are what it measured.**\n"}
Measured ${p.parts ? p.parts.map((x) => `${x.sizes.map((s) => s.toLocaleString("en")).join(", ")} Services at ${x.measuredAt.slice(0, 16).replace("T", " ")} UTC`).join(", ") + " (separate runs: every row and ratio of a size comes from one run, the reference included; only the first-packet growth across sizes compares runs)" : p.measuredAt.slice(0, 10)} on this machine: 2 cores shared with other sessions' labs and tests, at the load the last column shows (/proc/loadavg at the end of each phase; anything above 2 means the proxies waited for a CPU). Single figures vary accordingly; compare rows of the same run only. A lab without kubelets (etcd, kube-apiserver, kube-controller-manager) holds ${sizes.map((s) => s.toLocaleString("en")).join(" then ")} Services of 3 endpoints each. The bench writes the EndpointSlices itself (Services without selectors, slices labelled with their Service's name, as a controller writes them): a change is then one apiserver write timed from the bench's own request, not kube-controller-manager's batching, and 10,000 Services need no 30,000 Pod objects. Endpoint addresses lead nowhere, except the last-created Service's: three server namespaces on the node. Each proxy runs alone, in turn, in a fresh node namespace (nothing of the previous proxy's rules, sysctls or conntrack survives; the machine's own namespace is never touched), with client and servers attached by routed veths.

- full sync: proxy start → the last-created Service answers a TCP connection from the client namespace (tried every 10 ms), then checked against \`nft list ruleset\`: every Service's ClusterIP must be in it (otherwise the time it was);
- change → kernel: a PATCH of one random Service's EndpointSlice moving one endpoint to a never-used address, until \`nft monitor\` in the node's namespace shows the committed transaction that holds the address (stamped when its first event is read); ${p.changes} changes, 1.1–1.6 s apart, longer than kube-proxy's default minSyncPeriod (1 s), so isolated changes do not wait for it and "default" and "tuned" differ only by noise here. "Kernel events per change" is that transaction's size;
- counts: \`nft -j list ruleset\` in the node's namespace (iptables-nft's rules are nftables rules); anonymous sets inside rules count as part of their rule;
- RSS: VmRSS of the proxy's process; for Twill the whole node daemon (its proxy only: masquerade and NetworkPolicy off; the daemon's default 10 s resync);
- new connections/s: ${p.concurrency} connections at a time for ${p.rateSeconds} s to the last-created Service's ClusterIP from a Node.js loader in the client namespace (each connection reset after its handshake, so neither ports nor the machine-wide conntrack table fill), median of ${p.rounds} rounds. The loader and the servers share the 2 cores with the kernel's NAT, so this mostly measures them: ratios near 1 say the proxy's per-connection cost is small against a handshake, not that the proxies are equal;
- first packet: the TCP handshake to that ClusterIP, ${p.latencyCount} one after another per round (after 20 not counted), median of ${p.rounds} round medians; p99 over all (at this load it is scheduling). A new connection's SYN walks the nat chains: iptables mode's KUBE-SERVICES is a linear list (in Go map order, so the target sits at a random place in it), nftables mode's and Twill's are map lookups.

${tables.join("\n\n")}

Ratios to ${reference}, same run:

| proxy, Services | ${cols.join(" | ")} |
|${"---|".repeat(cols.length + 1)}
${ratioRows.join("\n")}

Issue 17's goals for Twill (ratios to ${reference}, same run):

| figure | Twill ÷ reference | goal | |
|---|---|---|---|
${goalRows.join("\n")}

${bars.length ? barChart(`One EndpointSlice change → kernel, p99 (ms), ${hi.toLocaleString("en")} Services`, "ms", bars) : ""}`;
}
