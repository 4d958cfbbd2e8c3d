// Prints the suite's closing line in the plain form every CI reader knows
// ("tests: N passed, N failed"), from vitest's JSON report:
//   node scripts/test-summary.ts REPORT.json
//
// vitest counts only tests. A file that throws while loading, or whose
// beforeAll/afterAll throws, has no failed test (none ran, or all passed) yet
// fails the run; counting tests alone printed "0 failed" above exit code 1.
// Each such file counts here as one failure, and is named above the line.
import { readFileSync } from "node:fs";
import { relative } from "node:path";

/** The parts of vitest's JSON report (reporters/json) this reads. */
export interface VitestReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numFailedTestSuites?: number;
  success?: boolean;
  testResults?: { name: string; status: string; message?: string; assertionResults: { status: string }[] }[];
}

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
  /** Files that failed with no failed test in them, with vitest's message. */
  fileFailures: { file: string; message: string }[];
  /** The run failed and neither a test nor a file says why. */
  unexplained: boolean;
}

export function summarize(report: VitestReport): Summary {
  const files = report.testResults ?? [];
  const fileFailures = files
    .filter((f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed"))
    .map((f) => ({ file: f.name, message: (f.message ?? "").split("\n")[0]!.trim() }));
  let failed = report.numFailedTests + fileFailures.length;
  // Without per-file results, failed suites beyond the failed tests are the files that failed to load.
  if (files.length === 0) failed = Math.max(failed, report.numFailedTestSuites ?? 0);
  // A run marked failed must never read "0 failed".
  const unexplained = report.success === false && failed === 0;
  if (unexplained) failed = 1;
  return { passed: report.numPassedTests, failed, skipped: report.numPendingTests + report.numTodoTests, fileFailures, unexplained };
}

/** The lines to print: one per file that failed outside a test, then the closing line. */
export function summaryLines(s: Summary, cwd = process.cwd()): string[] {
  const lines = s.fileFailures.map((f) => `failed outside any test: ${relative(cwd, f.file) || f.file}${f.message ? `: ${f.message}` : ""}`);
  if (s.unexplained) lines.push("failed outside any test: vitest marked the run failed (see its output above)");
  lines.push(`tests: ${s.passed} passed, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ""}`);
  return lines;
}

if (import.meta.main) {
  const path = process.argv[2];
  if (!path) {
    console.error("usage: node scripts/test-summary.ts REPORT.json");
    process.exit(2);
  }
  const report = JSON.parse(readFileSync(path, "utf8")) as VitestReport;
  for (const line of summaryLines(summarize(report))) console.log(line);
}
