import { describe, expect, it } from "vitest";
import { cniAdds, parseLogTime, policyTimes, sandboxTimes, summarise, type PodTimeline } from "../../bench/support/pod-timeline.ts";
import { timelineChart } from "../../bench/support/report.ts";

describe("pod timeline sources", () => {
  it("reads RFC 3339 times with nanoseconds and offsets to the sub-millisecond", () => {
    expect(parseLogTime("2026-12-04T18:30:00.123456789Z")).toBeCloseTo(Date.UTC(2026, 11, 4, 18, 30, 0, 123) + 0.456789, 3);
    expect(parseLogTime("2026-12-04T19:30:00+01:00")).toBe(Date.UTC(2026, 11, 4, 18, 30, 0));
    expect(parseLogTime("yesterday")).toBeNaN();
  });

  it("takes a pod's first RunPodSandbox call and the first one that returned a sandbox", () => {
    const log = [
      'time="2026-12-04T18:30:00.100000000Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:churn-1,Uid:u1,Namespace:default,Attempt:0,}"',
      'time="2026-12-04T18:30:00.200000000Z" level=error msg="RunPodSandbox for &PodSandboxMetadata{Name:churn-1,Uid:u1,Namespace:default,Attempt:0,} failed, error" error="boom"',
      'time="2026-12-04T18:30:01.000000000Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:churn-1,Uid:u1,Namespace:default,Attempt:1,}"',
      'time="2026-12-04T18:30:01.500000000Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:churn-1,Uid:u1,Namespace:default,Attempt:1,} returns sandbox id \\"abc123\\""',
      'time="2026-12-04T18:30:02.000000000Z" level=info msg="StartContainer for \\"def\\""',
    ].join("\n");
    const s = sandboxTimes(log).get("default/churn-1")!;
    expect(s).toEqual({ start: Date.UTC(2026, 11, 4, 18, 30, 0, 100), ready: Date.UTC(2026, 11, 4, 18, 30, 1, 500), id: "abc123" });
  });

  it("dates an ADD from its log line: the end is the line's time, the start processMs before", () => {
    const line = JSON.stringify({ level: 30, time: "2026-12-04T18:30:01.400Z", cmd: "ADD", containerId: "abc123", ips: ["10.244.1.7"], ipamMs: 3, kernelMs: 20, processMs: 150.5, msg: "pod attached" });
    const add = cniAdds(`${line}\n{"cmd":"DEL","containerId":"zzz"}\n`).get("abc123")!;
    expect(add.end).toBe(Date.UTC(2026, 11, 4, 18, 30, 1, 400));
    expect(add.start).toBeCloseTo(add.end - 150.5, 6);
  });

  it("takes the first time an address entered the ready set, and nothing else of the table", () => {
    const p = policyTimes([
      { t: 1, line: "add element inet twill-policy allow-in { 10.244.1.9 . 6 . 80 }" },
      { t: 2, line: "add element inet twill-policy ready { 10.244.1.7, 10.244.1.8 }" },
      { t: 3, line: "add element inet twill-policy ready { 10.244.1.7 }" },
      { t: 4, line: "add element inet other ready { 10.244.1.9 }" },
    ]);
    expect([...p]).toEqual([
      ["10.244.1.7", 2],
      ["10.244.1.8", 2],
    ]);
  });
});

describe("timeline summary", () => {
  it("measures each stage from the previous mark, keeps negative stages, and each mark from created", () => {
    const pod = (k: number): PodTimeline => ({ created: 0, scheduled: 10 * k, sandbox: 20 * k, cniStart: 30 * k, cniEnd: 40 * k, policy: 35 * k, ready: 60 * k, sandboxReady: 45 * k, ipReported: 33 * k });
    const s = summarise([pod(1), pod(2), pod(3)]);
    expect(s.stages.map((x) => [x.from, x.to, x.p50])).toEqual([
      ["created", "scheduled", 20],
      ["scheduled", "sandbox", 20],
      ["sandbox", "cniStart", 20],
      ["cniStart", "cniEnd", 20],
      ["cniEnd", "policy", -10],
      ["policy", "ready", 50],
    ]);
    expect(s.marks.find((m) => m.mark === "ready")).toEqual({ mark: "ready", p50: 120, p99: 180 });
    expect(s.daemonPolicy).toEqual({ p50: 4, p99: 6 });
  });

  it("draws a backwards span from its earlier to its later end", () => {
    const chart = timelineChart("t", [{ name: "p50", spans: [{ label: "a: b", from: 100, to: 40 }] }]);
    expect(chart).toContain("  a  b : 40, 100");
  });
});
