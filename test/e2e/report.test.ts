import { describe, expect, it } from "vitest";
import { countOutcomes, parseGinkgoReport, ProgressParser, summaryLine } from "../../lab/e2e/report.ts";
import { mergeResults, resultsTable } from "../../lab/e2e/results.ts";
import { exactly } from "../../lab/e2e/suites.ts";

// The e2e runner's pure parts: ginkgo's JSON report, its verbose output, the
// results file's merge. No lab.

const spec = (text: string, state: string, attempts = 1, runTimeNs = 12_340_000_000, message?: string) => ({
  ContainerHierarchyTexts: ["[sig-network] HostPort"],
  ContainerHierarchyLabels: [["sig-network"]],
  LeafNodeType: "It",
  LeafNodeText: text,
  LeafNodeLabels: ["Conformance"],
  State: state,
  RunTime: runTimeNs,
  NumAttempts: attempts,
  ...(message ? { Failure: { Message: message } } : {}),
});

describe("ginkgo's JSON report", () => {
  it("keeps the specs the focus selected and leaves out the ones it filtered (skipped, never attempted)", () => {
    const report = [
      {
        SuiteSucceeded: false,
        PreRunStats: { TotalSpecs: 4, SpecsThatWillRun: 3 },
        SpecReports: [
          spec("a [Conformance]", "passed"),
          spec("b", "failed", 1, 1_000_000_000, "timed out\nwaiting"),
          spec("c", "skipped", 1, 0, "no provider"),
          spec("d", "skipped", 0, 0),
          { ...spec("setup", "passed"), LeafNodeType: "BeforeSuite" },
        ],
      },
    ];
    const r = parseGinkgoReport(JSON.stringify(report));
    expect(r.willRun).toBe(3);
    expect(r.specs.map((s) => [s.name, s.outcome])).toEqual([
      ["[sig-network] HostPort a [Conformance]", "passed"],
      ["[sig-network] HostPort b", "failed"],
      ["[sig-network] HostPort c", "skipped"],
    ]);
    expect(r.specs[0]!.seconds).toBe(12.34);
    expect(r.specs[1]!.message).toBe("timed out\nwaiting");
    expect(summaryLine(countOutcomes(r.specs))).toBe("1 passed, 1 failed, 1 skipped");
  });

  it("counts a timed-out or interrupted spec as failed and says which", () => {
    const r = parseGinkgoReport(JSON.stringify([{ SuiteSucceeded: false, SpecReports: [spec("x", "timedout"), spec("y", "interrupted")] }]));
    expect(r.specs.map((s) => [s.outcome, s.state])).toEqual([
      ["failed", "timedout"],
      ["failed", "interrupted"],
    ]);
  });
});

describe("ginkgo's verbose output", () => {
  it("reports each spec when its outcome line arrives, named from the dry run's list, not the header's label suffix", () => {
    const p = new ProgressParser(["[sig-network] HostPort validates", "[sig-network] HostPort validates that there is no conflict [Conformance]"]);
    const lines = [
      "------------------------------",
      "[sig-network] HostPort validates that there is no conflict [Conformance] [sig-network, Conformance]",
      "k8s.io/kubernetes@v1.36.3/test/e2e/network/hostport.go:63",
      "  STEP: Creating a kubernetes client @ 12/04/26 18:20:07.914",
      "• [13.940 seconds]",
      "------------------------------",
      "S [SKIPPED] [0.100 seconds]",
      "------------------------------",
      "[sig-network] HostPort validates the other one [sig-network]",
      "• [FAILED] [2.500 seconds]",
    ];
    const done = lines.map((l) => p.line(l)).filter(Boolean);
    expect(done).toEqual([
      { name: "[sig-network] HostPort validates that there is no conflict [Conformance]", outcome: "passed", state: "passed", seconds: 13.94 },
      { name: "[sig-network] HostPort validates", outcome: "failed", state: "failed", seconds: 2.5 },
    ]);
  });
});

describe("bench-results/e2e.json", () => {
  const run = (backend: string, proxy: string) => ({ date: "2026-12-04", backend, proxy, focus: "f", skip: "s", nodes: 2, passed: 1, failed: 0, skipped: 0, seconds: 60 });

  it("a run replaces its own flavour's rows for the specs it ran and keeps every other row", () => {
    let r = mergeResults({ tests: [], runs: [] }, [{ name: "a", outcome: "failed", seconds: 1 }, { name: "b", outcome: "passed", seconds: 2 }], run("vxlan", "nftables"));
    r = mergeResults(r, [{ name: "a", outcome: "passed", seconds: 3 }], run("bgp", "nftables"));
    r = mergeResults(r, [{ name: "a", outcome: "passed", seconds: 4 }], run("vxlan", "nftables"));
    expect(r.tests.map((t) => `${t.name} ${t.backend} ${t.outcome} ${t.seconds}`)).toEqual(["a bgp passed 3", "a vxlan passed 4", "b vxlan passed 2"]);
    expect(r.runs).toHaveLength(3);
    const table = resultsTable(r);
    expect(table).toContain("| spec | bgp / nftables | vxlan / nftables |");
    expect(table).toContain("| a | ✓ 3.0 s | ✓ 4.0 s |");
    expect(table).toContain("| **total** | 1 passed, 0 failed, 0 skipped | 2 passed, 0 failed, 0 skipped |");
  });
});

describe("focus expressions", () => {
  it("a spec's exact name matches itself and not a longer sibling's start", () => {
    const name = "[sig-network] Netpol X should support a 'default-deny-ingress' policy [Feature:NetworkPolicy]";
    const re = new RegExp(exactly(name));
    expect(re.test(name)).toBe(true);
    expect(re.test(name.replace(" [Feature", " using UDP [Feature"))).toBe(false);
  });
});
