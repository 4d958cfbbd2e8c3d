import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Outcome, SpecResult } from "./report.ts";

// bench-results/e2e.json and its table in docs/e2e.md. One row per spec and
// cluster flavour (backend × kube-proxy mode); a run replaces the rows of the
// specs it ran in its own flavour and leaves every other row alone, so a
// vxlan run keeps a bgp run's results and a focused run keeps the rest.

export interface TestRow {
  name: string;
  outcome: Outcome;
  seconds: number;
  backend: string;
  proxy: string;
  /** When the row was measured (ISO date). */
  date?: string;
  message?: string;
}

export interface RunRow {
  date: string;
  backend: string;
  proxy: string;
  focus: string;
  skip: string;
  nodes: number;
  passed: number;
  failed: number;
  skipped: number;
  /** The whole run: lab up, specs, teardown. */
  seconds: number;
}

export interface E2eResults {
  tests: TestRow[];
  runs: RunRow[];
}

export function readResults(path: string): E2eResults {
  if (!existsSync(path)) return { tests: [], runs: [] };
  const r = JSON.parse(readFileSync(path, "utf8")) as Partial<E2eResults>;
  return { tests: r.tests ?? [], runs: r.runs ?? [] };
}

const key = (t: { name: string; backend: string; proxy: string }) => `${t.backend}\0${t.proxy}\0${t.name}`;

export function mergeResults(old: E2eResults, specs: SpecResult[], run: RunRow): E2eResults {
  const rows = new Map(old.tests.map((t) => [key(t), t]));
  for (const s of specs) {
    const row: TestRow = { name: s.name, outcome: s.outcome, seconds: s.seconds, backend: run.backend, proxy: run.proxy, date: run.date, ...(s.message && s.outcome !== "passed" ? { message: s.message.split("\n")[0]! } : {}) };
    rows.set(key(row), row);
  }
  const tests = [...rows.values()].sort((a, b) => a.name.localeCompare(b.name) || a.backend.localeCompare(b.backend) || a.proxy.localeCompare(b.proxy));
  return { tests, runs: [...old.runs, run].slice(-50) };
}

export function writeResults(path: string, r: E2eResults): void {
  writeFileSync(path, JSON.stringify(r, null, 2) + "\n");
}

const MARK_START = "<!-- e2e-results:start (written by npm run e2e) -->";
const MARK_END = "<!-- e2e-results:end -->";

const cell = (t: TestRow | undefined) => (t ? `${t.outcome === "passed" ? "✓" : t.outcome === "failed" ? "✗ failed" : "skipped"} ${t.seconds.toFixed(1)} s` : "");

/** The results table: one row per spec, one column per backend × proxy mode measured. */
export function resultsTable(r: E2eResults): string {
  const flavours = [...new Set(r.tests.map((t) => `${t.backend} / ${t.proxy}`))].sort();
  const names = [...new Set(r.tests.map((t) => t.name))].sort();
  const byKey = new Map(r.tests.map((t) => [`${t.backend} / ${t.proxy}\0${t.name}`, t]));
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [`| spec | ${flavours.join(" | ")} |`, `|---|${flavours.map(() => "---").join("|")}|`];
  for (const n of names) lines.push(`| ${esc(n)} | ${flavours.map((f) => cell(byKey.get(`${f}\0${n}`))).join(" | ")} |`);
  const totals = flavours.map((f) => {
    const rows = r.tests.filter((t) => `${t.backend} / ${t.proxy}` === f);
    const n = (o: Outcome) => rows.filter((t) => t.outcome === o).length;
    return `${n("passed")} passed, ${n("failed")} failed, ${n("skipped")} skipped`;
  });
  lines.push(`| **total** | ${totals.join(" | ")} |`);
  const failures = r.tests.filter((t) => t.outcome !== "passed" && t.message);
  if (failures.length) {
    lines.push("", "Not passed, with the first line of ginkgo's message:", "");
    for (const t of failures) lines.push(`- ${t.backend} / ${t.proxy}, ${esc(t.name)}: ${t.outcome}: \`${t.message!.replace(/`/g, "'")}\``);
  }
  return lines.join("\n");
}

/** Replaces the table between the markers in docs/e2e.md (appending the markers when missing). */
export function updateDoc(path: string, r: E2eResults): void {
  const doc = existsSync(path) ? readFileSync(path, "utf8") : "# Upstream e2e\n";
  const block = `${MARK_START}\n${resultsTable(r)}\n${MARK_END}`;
  const a = doc.indexOf(MARK_START);
  const b = doc.indexOf(MARK_END);
  const next = a >= 0 && b > a ? doc.slice(0, a) + block + doc.slice(b + MARK_END.length) : `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, next);
}
