import { describe, expect, it } from "vitest";
import { summarize, summaryLines, type VitestReport } from "../../scripts/test-summary.ts";

// The report below is vitest 5's JSON reporter output for four files (trimmed
// of timings and stack traces): one that throws at import, one with a failing
// test, one whose beforeAll throws, and one that passes with a skip and a todo.
const assertion = (title: string, status: string) => ({ ancestorTitles: [], fullName: title, status, title, failureMessages: status === "failed" ? ["AssertionError: expected 1 to be 2"] : [], meta: {}, tags: [], benchmarks: [] });
const REAL: VitestReport = {
  numTotalTestSuites: 4,
  numPassedTestSuites: 1,
  numFailedTestSuites: 3,
  numPendingTestSuites: 0,
  numTotalTests: 7,
  numPassedTests: 2,
  numFailedTests: 1,
  numPendingTests: 3,
  numTodoTests: 1,
  success: false,
  testResults: [
    { assertionResults: [], status: "failed", message: "cannot load", name: "/repo/test/broken.test.ts" },
    { assertionResults: [assertion("fails", "failed"), assertion("passes too", "passed")], status: "failed", message: "", name: "/repo/test/fail.test.ts" },
    { assertionResults: [assertion("a", "skipped"), assertion("b", "skipped")], status: "failed", message: "setup broke", name: "/repo/test/hookfail.test.ts" },
    { assertionResults: [assertion("passes", "passed"), assertion("skipped", "skipped"), assertion("todo", "todo")], status: "passed", message: "", name: "/repo/test/pass.test.ts" },
  ],
} as VitestReport;

describe("the closing summary line", () => {
  it("counts a file that failed to load, and one whose hook threw, as one failure each and names them", () => {
    const s = summarize(REAL);
    expect(s).toMatchObject({ passed: 2, failed: 3, skipped: 4 });
    expect(summaryLines(s, "/repo")).toEqual([
      "failed outside any test: test/broken.test.ts: cannot load",
      "failed outside any test: test/hookfail.test.ts: setup broke",
      "tests: 2 passed, 3 failed, 4 skipped",
    ]);
  });

  it("a file with a failing test adds nothing beyond that test", () => {
    const report = { ...REAL, numPassedTests: 1, numPendingTests: 0, numTodoTests: 0, testResults: [REAL.testResults![1]!] };
    expect(summaryLines(summarize(report), "/repo")).toEqual(["tests: 1 passed, 1 failed"]);
  });

  it("a clean run prints the plain line, skipped only when there are some", () => {
    const report: VitestReport = { numPassedTests: 333, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, success: true, testResults: [REAL.testResults![3]!] };
    expect(summaryLines(summarize(report))).toEqual(["tests: 333 passed, 0 failed"]);
  });

  it("without per-file results, failed suites the failed tests do not explain still count", () => {
    const { testResults: _, ...bare } = REAL;
    expect(summarize({ ...bare, numFailedTests: 0 }).failed).toBe(3);
  });

  it("a run marked failed never reads 0 failed", () => {
    const s = summarize({ numPassedTests: 5, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, success: false, testResults: [] });
    expect(summaryLines(s).at(-1)).toBe("tests: 5 passed, 1 failed");
  });
});
