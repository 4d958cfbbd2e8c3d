import { execIn } from "../lib/kernel/netns.ts";
import type { LabPod } from "./cluster.ts";

// The pod↔pod connectivity matrix: a real ping from every pod namespace to
// every other pod's address. Which pairs must work grows as Twill does: until
// the node daemon connects nodes, only pods on the same node are expected.

export interface Probe {
  from: LabPod;
  to: LabPod;
  ok: boolean;
  rttMs: number | undefined;
  expected: boolean;
}

export type Expectation = (from: LabPod, to: LabPod) => boolean;

export const sameNodeOnly: Expectation = (a, b) => a.node === b.node;
export const allPairs: Expectation = () => true;

async function ping(from: LabPod, to: LabPod): Promise<{ ok: boolean; rttMs: number | undefined }> {
  const r = await execIn(from.ns, ["ping", "-c1", "-W2", to.ip], { allowFailure: true });
  const m = /time=([\d.]+) ms/.exec(r.stdout);
  return { ok: r.code === 0, rttMs: m ? Number(m[1]) : undefined };
}

export async function probeMatrix(pods: LabPod[], expected: Expectation, concurrency = 6): Promise<Probe[]> {
  const pairs = pods.flatMap((a) => pods.filter((b) => b !== a).map((b) => [a, b] as const));
  const out: Probe[] = [];
  for (let i = 0; i < pairs.length; i += concurrency) {
    const batch = pairs.slice(i, i + concurrency);
    const results = await Promise.all(batch.map(([a, b]) => ping(a, b)));
    batch.forEach(([a, b], k) => out.push({ from: a, to: b, ...results[k]!, expected: expected(a, b) }));
  }
  return out;
}

/** A table of fixed-width columns (each as wide as its widest cell): a corner label, column headings, then one row per name. */
export function renderTable(corner: string, columns: string[], rows: { name: string; cells: string[] }[]): string {
  const width = (cells: string[]) => Math.max(12, ...cells.map((c) => c.length + 2));
  const first = width([corner, ...rows.map((r) => r.name)]);
  const widths = columns.map((c, i) => width([c, ...rows.map((r) => r.cells[i] ?? "")]));
  const line = (name: string, cells: string[]) => name.padEnd(first) + cells.map((c, i) => c.padEnd(widths[i]!)).join("");
  return [line(corner, columns), ...rows.map((r) => line(r.name, r.cells))].map((l) => l.trimEnd()).join("\n");
}

export function renderMatrix(pods: LabPod[], probes: Probe[]): string {
  const mark = (a: LabPod, b: LabPod) => {
    if (a === b) return "—";
    const p = probes.find((x) => x.from === a && x.to === b)!;
    return p.ok ? `ok ${p.rttMs?.toFixed(2) ?? "?"}ms` : p.expected ? "FAIL" : "· (n/a)";
  };
  return renderTable("from \\ to", pods.map((p) => p.name), pods.map((a) => ({ name: a.name, cells: pods.map((b) => mark(a, b)) })));
}

export function matrixPasses(probes: Probe[]): boolean {
  return probes.every((p) => !p.expected || p.ok);
}
