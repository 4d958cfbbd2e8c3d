// Ginkgo's JSON report (--ginkgo.json-report) read into the runner's terms:
// one result per spec the focus selected. Ginkgo lists every spec of the
// binary; a spec the focus or skip filtered out is "skipped" without ever
// being attempted (NumAttempts 0), and is left out here — only a spec that
// ran and called Skip (a missing provider, a feature this cluster lacks)
// counts as skipped.

export type Outcome = "passed" | "failed" | "skipped";

export interface SpecResult {
  name: string;
  outcome: Outcome;
  seconds: number;
  /** Ginkgo's own state when it is more than passed/failed/skipped (panicked, timedout, interrupted). */
  state?: string;
  /** The failure or skip message, first lines. */
  message?: string;
  labels?: string[];
}

interface GinkgoSpecReport {
  ContainerHierarchyTexts?: string[] | null;
  ContainerHierarchyLabels?: (string[] | null)[] | null;
  LeafNodeType: string;
  LeafNodeText: string;
  LeafNodeLabels?: string[] | null;
  State: string;
  RunTime: number;
  NumAttempts: number;
  Failure?: { Message?: string; Location?: { FileName?: string; LineNumber?: number } };
}

interface GinkgoReport {
  SuiteSucceeded: boolean;
  PreRunStats?: { TotalSpecs: number; SpecsThatWillRun: number };
  SpecReports: GinkgoSpecReport[] | null;
}

/** The full text ginkgo matches --focus against and prints: the containers' texts, then the spec's. */
export const specName = (s: Pick<GinkgoSpecReport, "ContainerHierarchyTexts" | "LeafNodeText">): string => [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(" ");

function outcomeOf(state: string): Outcome {
  if (state === "passed") return "passed";
  if (state === "skipped" || state === "pending") return "skipped";
  return "failed";
}

const firstLines = (m: string | undefined, n = 6) => (m ? m.trim().split("\n").slice(0, n).join("\n") : undefined);

export interface ParsedReport {
  specs: SpecResult[];
  /** What ginkgo said it would run (the focus's match count), before running. */
  willRun: number;
  succeeded: boolean;
}

export function parseGinkgoReport(text: string): ParsedReport {
  const reports = JSON.parse(text) as GinkgoReport[];
  const specs: SpecResult[] = [];
  let willRun = 0;
  let succeeded = true;
  for (const r of reports) {
    willRun += r.PreRunStats?.SpecsThatWillRun ?? 0;
    succeeded &&= r.SuiteSucceeded;
    for (const s of r.SpecReports ?? []) {
      if (s.LeafNodeType !== "It") continue;
      if (s.State === "skipped" && s.NumAttempts === 0) continue;
      const outcome = outcomeOf(s.State);
      const message = firstLines(s.Failure?.Message);
      specs.push({
        name: specName(s),
        outcome,
        seconds: Math.round(s.RunTime / 1e7) / 100,
        ...(outcome === "failed" && s.State !== "failed" ? { state: s.State } : {}),
        ...(outcome !== "passed" && message ? { message } : {}),
        labels: [...new Set([...(s.ContainerHierarchyLabels ?? []).flatMap((l) => l ?? []), ...(s.LeafNodeLabels ?? [])])],
      });
    }
  }
  return { specs, willRun, succeeded };
}

/** The specs a dry run lists (every spec the focus selects, none run): names and labels, for progress and counts. */
export function dryRunSpecs(text: string): { name: string; labels: string[] }[] {
  const reports = JSON.parse(text) as GinkgoReport[];
  return reports.flatMap((r) =>
    (r.SpecReports ?? [])
      .filter((s) => s.LeafNodeType === "It" && s.State === "passed")
      .map((s) => ({ name: specName(s), labels: [...new Set([...(s.ContainerHierarchyLabels ?? []).flatMap((l) => l ?? []), ...(s.LeafNodeLabels ?? [])])] })),
  );
}

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

export function countOutcomes(specs: SpecResult[]): Counts {
  const c: Counts = { passed: 0, failed: 0, skipped: 0 };
  for (const s of specs) c[s.outcome]++;
  return c;
}

export const summaryLine = (c: Counts) => `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`;

/**
 * Ginkgo's verbose output, line by line, into finished specs as they finish: a spec's header (its full text,
 * then its labels) follows a line of dashes; its outcome line is `• [12.3 seconds]`, `• [FAILED] [12.3
 * seconds]`, `S [SKIPPED] [0.1 seconds]`… Names come from `known` (the dry run's list), so a header's label
 * suffix is never mistaken for part of the name.
 */
export class ProgressParser {
  private current: string | undefined;
  private afterRule = false;
  private readonly known: string[];

  constructor(known: string[]) {
    // Longest first: one spec's name can be the start of another's.
    this.known = [...known].sort((a, b) => b.length - a.length);
  }

  /** Returns the spec that finished on this line, if one did. */
  line(l: string): { name: string; outcome: Outcome; state: string; seconds: number } | undefined {
    const t = l.trim();
    if (/^-{20,}$/.test(t)) {
      this.afterRule = true;
      return undefined;
    }
    const done = /^(?:•|S|P)\s*(?:\[([A-Z]+)\]\s*)?\[([\d.]+) seconds\]/.exec(t);
    if (done) {
      const state = (done[1] ?? "PASSED").toLowerCase();
      const name = this.current;
      this.current = undefined;
      this.afterRule = false;
      if (!name) return undefined;
      return { name, outcome: outcomeOf(state), state, seconds: Number(done[2]) };
    }
    if (this.afterRule && t) {
      this.afterRule = false;
      const name = this.known.find((k) => t.startsWith(k));
      if (name) this.current = name;
    }
    return undefined;
  }
}
