import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

// Every benchmark leaves its latest figures in bench-results/<bench>.json
// (figure → value + unit) and its section of docs/benchmarks.md, between
// markers so each benchmark rewrites only its own part.

export const REPO = resolve(import.meta.dirname, "../..");

export interface Figure {
  value: number;
  unit: string;
}

export function writeResults(bench: string, figures: Record<string, Figure>, meta: Record<string, unknown>): string {
  const dir = join(REPO, "bench-results");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${bench}.json`);
  writeFileSync(path, JSON.stringify({ bench, measuredAt: new Date().toISOString(), ...meta, figures }, null, 2) + "\n");
  return path;
}

export function updateDocSection(bench: string, markdown: string): string {
  const path = join(REPO, "docs/benchmarks.md");
  let doc: string;
  try {
    doc = readFileSync(path, "utf8");
  } catch {
    doc = "# Benchmarks\n\nEach section is rewritten by its benchmark (`npm run bench:<name>`); figures also live in `bench-results/<name>.json`.\n";
  }
  const begin = `<!-- bench:${bench}:begin -->`;
  const end = `<!-- bench:${bench}:end -->`;
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  doc = i >= 0 && j > i ? doc.slice(0, i) + section + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(path, doc);
  return path;
}

/** A bar chart GitHub renders (mermaid xychart). */
export function barChart(title: string, yLabel: string, bars: { label: string; value: number }[]): string {
  const labels = bars.map((b) => JSON.stringify(b.label)).join(", ");
  const values = bars.map((b) => b.value).join(", ");
  const max = Math.max(...bars.map((b) => b.value)) * 1.15;
  return ["```mermaid", "xychart-beta", `  title ${JSON.stringify(title)}`, `  x-axis [${labels}]`, `  y-axis ${JSON.stringify(yLabel)} 0 --> ${Math.ceil(max)}`, `  bar [${values}]`, "```"].join("\n");
}

/**
 * A timeline GitHub renders (mermaid gantt, milliseconds from 0): one section
 * per row, one bar per span. A span whose end lies before its start (two
 * processes racing) is drawn from the earlier to the later time; its label
 * says which way round it is.
 */
export function timelineChart(title: string, sections: { name: string; spans: { label: string; from: number; to: number }[] }[]): string {
  const max = Math.max(...sections.flatMap((s) => s.spans.map((b) => Math.max(b.from, b.to))));
  const lines = ["```mermaid", "gantt", `  title ${title}`, "  dateFormat x", `  axisFormat ${max < 60_000 ? "%S.%L s" : "%M:%S"}`, "  todayMarker off"];
  for (const s of sections) {
    lines.push(`  section ${s.name}`);
    for (const b of s.spans) {
      const lo = Math.round(Math.min(b.from, b.to));
      // A bar of zero width is not drawn at all.
      const hi = Math.max(lo + 1, Math.round(Math.max(b.from, b.to)));
      lines.push(`  ${b.label.replace(/[:#;]/g, " ")} : ${lo}, ${hi}`);
    }
  }
  lines.push("```");
  return lines.join("\n");
}
