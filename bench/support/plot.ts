import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { REPO } from "./report.ts";
import { benchPlots } from "./plot-specs.ts";

// Benchmark plots: Vega-Lite specs rendered to SVG headlessly (vega's
// renderer "none" plus toSVG: no browser, no DOM, no canvas). Chosen over
// ECharts' server-side SVG by measurement (Node 24, this machine, load ~5):
// vega + vega-lite import in ~110 ms and render a line plot in ~60 ms, 25 MB
// installed; echarts took ~1.9 s to import, 67 MB. Specs are data, so a
// plot's look is reviewed as JSON in plot-specs.ts.
//
// Each bench ends with `await plotBench("<bench>")`: it renders from
// bench-results/<bench>.json (and bench-results/<bench>-series.json, raw
// samples a bench may write with writeSeries) into docs/plots/<bench>-*.svg,
// and puts the images into docs/benchmarks.md right after that bench's
// section. `npm run bench:plots` does the same for every committed result.

export type Figures = Record<string, { value: number; unit: string }>;

export interface BenchResults {
  bench: string;
  figures: Figures;
  [meta: string]: unknown;
}

/** Raw samples a bench keeps beside its figures: series name → values (ms, s…). */
export type Series = Record<string, number[]>;

export interface Plot {
  /** File name part: docs/plots/<bench>-<name>.svg. */
  name: string;
  title: string;
  spec: TopLevelSpec;
}

const PLOTS_DIR = join(REPO, "docs/plots");
const DOC = join(REPO, "docs/benchmarks.md");

/** Fonts and sizes for every plot; a spec's own config wins. */
const BASE_CONFIG = { font: "DejaVu Sans, Helvetica, Arial, sans-serif", view: { stroke: "#ddd" }, axis: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 }, legend: { labelFontSize: 11, labelLimit: 320, orient: "bottom", direction: "vertical" } };

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const full = { width: 560, height: 260, background: "white", ...spec, config: { ...BASE_CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec;
  const view = new View(parse(compile(full).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function writeSeries(bench: string, series: Series): string {
  const path = join(REPO, "bench-results", `${bench}-series.json`);
  const rounded = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, v.map((x) => Math.round(x * 100) / 100)]));
  writeFileSync(path, JSON.stringify({ bench, series: rounded }) + "\n");
  return path;
}

export function readResults(bench: string, dir = join(REPO, "bench-results")): { results: BenchResults; series?: Series } | undefined {
  const path = join(dir, `${bench}.json`);
  if (!existsSync(path)) return undefined;
  const results = JSON.parse(readFileSync(path, "utf8")) as BenchResults;
  const sp = join(dir, `${bench}-series.json`);
  const series = existsSync(sp) ? (JSON.parse(readFileSync(sp, "utf8")) as { series: Series }).series : undefined;
  return { results, ...(series ? { series } : {}) };
}

/** Renders one bench's plots from its results; writes nothing when it has none (unknown bench, no results). */
export async function renderBench(bench: string, dir?: string): Promise<{ plot: Plot; svg: string }[]> {
  const r = readResults(bench, dir);
  if (!r) return [];
  const out: { plot: Plot; svg: string }[] = [];
  for (const plot of benchPlots(bench, r.results, r.series)) out.push({ plot, svg: await renderSvg(plot.spec) });
  return out;
}

/**
 * The one line at the end of each bench: renders its plots into
 * docs/plots/ and links them under its section of docs/benchmarks.md.
 * Never fails the bench: a plot that cannot be drawn is reported and skipped.
 */
export async function plotBench(bench: string): Promise<string[]> {
  try {
    const rendered = await renderBench(bench);
    if (rendered.length === 0) return [];
    mkdirSync(PLOTS_DIR, { recursive: true });
    const files: string[] = [];
    for (const { plot, svg } of rendered) {
      const file = `${bench}-${plot.name}.svg`;
      writeFileSync(join(PLOTS_DIR, file), svg);
      files.push(file);
    }
    placePlots(bench, rendered.map(({ plot }, i) => `![${plot.title}](plots/${files[i]})`).join("\n\n"));
    return files;
  } catch (err) {
    console.error(`[plot] ${bench}: plots not drawn: ${(err as Error).message}`);
    return [];
  }
}

/** Puts the images between plots markers right after the bench's own section (or replaces them). */
function placePlots(bench: string, markdown: string): void {
  if (!existsSync(DOC)) return;
  let doc = readFileSync(DOC, "utf8");
  const begin = `<!-- plots:${bench}:begin -->`;
  const end = `<!-- plots:${bench}:end -->`;
  const block = `${begin}\n${markdown}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) doc = doc.slice(0, i) + block + doc.slice(j + end.length);
  else {
    const sectionEnd = `<!-- bench:${bench}:end -->`;
    const k = doc.indexOf(sectionEnd);
    doc = k >= 0 ? `${doc.slice(0, k + sectionEnd.length)}\n\n${block}${doc.slice(k + sectionEnd.length)}` : `${doc.trimEnd()}\n\n${block}\n`;
  }
  writeFileSync(DOC, doc);
}
