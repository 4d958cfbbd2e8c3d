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

export function renderMatrix(pods: LabPod[], probes: Probe[]): string {
  const w = Math.max(12, ...pods.map((p) => p.name.length + 2));
  const cell = (s: string) => s.padEnd(w);
  const lines = [cell("from \\ to") + pods.map((p) => cell(p.name)).join("")];
  for (const a of pods) {
    let line = cell(a.name);
    for (const b of pods) {
      if (a === b) {
        line += cell("—");
        continue;
      }
      const p = probes.find((x) => x.from === a && x.to === b)!;
      const mark = p.ok ? `ok ${p.rttMs?.toFixed(2) ?? "?"}ms` : p.expected ? "FAIL" : "· (n/a)";
      line += cell(mark);
    }
    lines.push(line);
  }
  return lines.join("\n");
}

export function matrixPasses(probes: Probe[]): boolean {
  return probes.every((p) => !p.expected || p.ok);
}
