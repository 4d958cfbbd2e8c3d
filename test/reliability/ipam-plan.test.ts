import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { planRelease, recordKey, type SweepRecord } from "../../daemon/ipam/plan.ts";
import { readRecords, sweepIpam } from "../../daemon/ipam/sweep.ts";
import { IpamStore } from "../../lib/ipam/store.ts";
import { recordFigure } from "../../lab/chaos-figures.ts";

// The sweep's decision (pure) and the store's removal lock, on a real directory.

const HOUR = 3_600_000;
const GRACE = 15 * 60_000;
const NOW = 10 * HOUR;

const rec = (ip: string, over: Partial<SweepRecord> = {}): SweepRecord => ({ network: "twill", ip, containerId: `c-${ip}`, ifname: "eth0", allocatedAtMs: NOW - HOUR, ino: 1, ...over });
const base = { podCidrs: ["10.244.1.0/24", "fd00:1::/64"], nowMs: NOW, graceMs: GRACE, livePodIps: new Set<string>(), candidateSince: new Map<string, number>() };

describe("planRelease", () => {
  it("never releases an address a pod bound to the node holds, however old its record", () => {
    const plan = planRelease({ ...base, records: [rec("10.244.1.5"), rec("fd00:1::5")], livePodIps: new Set(["10.244.1.5", "fd00:1::5"]), candidateSince: new Map([[recordKey(rec("10.244.1.5")), 0]]) });
    expect(plan.release).toEqual([]);
    expect(plan.kept.map((k) => k.reason)).toEqual(["live-pod", "live-pod"]);
  });

  it("keeps a record younger than the grace period: a pod being created has its record before the apiserver has its IP", () => {
    const plan = planRelease({ ...base, records: [rec("10.244.1.6", { allocatedAtMs: NOW - 1000 })], candidateSince: new Map([[recordKey(rec("10.244.1.6")), 0]]) });
    expect(plan.release).toEqual([]);
    expect(plan.kept[0]!.reason).toBe("younger-than-grace");
    expect(plan.candidateSince.size).toBe(0);
  });

  it("releases an orphan only after it stayed one for the whole grace period", () => {
    const orphan = rec("10.244.1.7");
    const first = planRelease({ ...base, records: [orphan] });
    expect(first.release).toEqual([]);
    expect(first.kept[0]!.reason).toBe("candidate");
    const early = planRelease({ ...base, records: [orphan], nowMs: NOW + GRACE - 1, candidateSince: first.candidateSince });
    expect(early.release).toEqual([]);
    const due = planRelease({ ...base, records: [orphan], nowMs: NOW + GRACE, candidateSince: early.candidateSince });
    expect(due.release).toEqual([orphan]);
  });

  it("restarts the clock for an address released and claimed again (a new claim is a new record)", () => {
    const first = planRelease({ ...base, records: [rec("10.244.1.8", { ino: 1 })] });
    const again = planRelease({ ...base, records: [rec("10.244.1.8", { ino: 1, containerId: "other", allocatedAtMs: NOW - HOUR + 5 })], nowMs: NOW + GRACE, candidateSince: first.candidateSince });
    expect(again.release).toEqual([]);
    expect(again.kept[0]!.reason).toBe("candidate");
  });

  it("forgets a candidate whose pod's IP appeared, and leaves records outside the node's pod CIDRs alone", () => {
    const first = planRelease({ ...base, records: [rec("10.244.1.9"), rec("10.99.0.9")] });
    expect(first.kept.map((k) => k.reason)).toEqual(["candidate", "outside-pod-cidrs"]);
    const seen = planRelease({ ...base, records: [rec("10.244.1.9")], livePodIps: new Set(["10.244.1.9"]), candidateSince: first.candidateSince });
    expect(seen.candidateSince.size).toBe(0);
    const later = planRelease({ ...base, records: [rec("10.244.1.9")], nowMs: NOW + GRACE, candidateSince: seen.candidateSince });
    expect(later.release).toEqual([]);
  });

  it("keeps a record whose sandbox the runtime reports running", () => {
    const plan = planRelease({ ...base, records: [rec("10.244.1.10")], liveContainerIds: new Set(["c-10.244.1.10"]), nowMs: NOW + GRACE, candidateSince: new Map([[recordKey(rec("10.244.1.10")), 0]]) });
    expect(plan.kept[0]!.reason).toBe("live-sandbox");
  });
});

describe("sweep on a real IPAM directory", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "rel-ipam-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const backdate = (store: IpamStore, ip: string, ms: number) => utimesSync(join(store.dir, ip), new Date(ms), new Date(ms));

  it("releases an address claimed again since it was planned on only if it is still the planned claim", () => {
    const store = new IpamStore(join(dir, "twill"));
    expect(store.claim("10.244.1.20", "old", "eth0")).toBe(true);
    const planned = store.records()[0]!;
    store.release("old", "eth0");
    expect(store.claim("10.244.1.20", "new", "eth0")).toBe(true);
    expect(store.removeIf("10.244.1.20", planned)).toBe(false);
    expect(store.ownerOf("10.244.1.20")?.containerId).toBe("new");
    expect(store.removeIf("10.244.1.20", store.records()[0]!)).toBe(true);
    expect(store.list()).toEqual([]);
  });

  it("frees the orphan, keeps the live pod's and the young record, removes the orphan's index link", () => {
    const store = new IpamStore(join(dir, "twill"));
    store.claim("10.244.1.30", "live", "eth0");
    store.claim("10.244.1.31", "orphan", "eth0");
    store.claim("10.244.1.32", "young", "eth0");
    const now = Date.now();
    backdate(store, "10.244.1.30", now - HOUR);
    backdate(store, "10.244.1.31", now - HOUR);
    const input = { podCidrs: ["10.244.1.0/24"], livePodIps: new Set(["10.244.1.30"]), graceMs: GRACE };
    const first = sweepIpam(dir, { ...input, nowMs: now, candidateSince: new Map() });
    expect(first.released).toEqual([]);
    const second = sweepIpam(dir, { ...input, nowMs: now + GRACE, candidateSince: first.plan.candidateSince });
    expect(second.released.map((r) => r.ip)).toEqual(["10.244.1.31"]);
    expect(readRecords(dir).map((r) => r.containerId).sort()).toEqual(["live", "young"]);
    expect(store.findByOwner("orphan", "eth0", "thorough")).toEqual([]);
  });

  it("a full /24 (253 records, 200 live): one sweep plans and releases only the 53 orphans", () => {
    const store = new IpamStore(join(dir, "twill"));
    const live = new Set<string>();
    const now = Date.now();
    for (let i = 2; i <= 254; i++) {
      const ip = `10.244.1.${i}`;
      store.claim(ip, `c${i}`, "eth0");
      backdate(store, ip, now - HOUR);
      if (i < 202) live.add(ip);
    }
    const input = { podCidrs: ["10.244.1.0/24"], livePodIps: live, graceMs: GRACE };
    const first = sweepIpam(dir, { ...input, nowMs: now, candidateSince: new Map() });
    const t = performance.now();
    const second = sweepIpam(dir, { ...input, nowMs: now + GRACE, candidateSince: first.plan.candidateSince });
    recordFigure("ipam_sweep_full_24_ms", Math.round((performance.now() - t) * 100) / 100, "ms", "253 records, 53 released");
    expect(second.released).toHaveLength(53);
    expect(store.list()).toHaveLength(200);
  });

  it("breaks a removal lock left by a killed process, and waits for a live holder", async () => {
    const store = new IpamStore(join(dir, "twill"));
    store.claim("10.244.1.40", "a", "eth0");
    const lock = join(store.dir, ".lock");
    writeFileSync(lock, "999999");
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    expect(store.release("a", "eth0")).toEqual(["10.244.1.40"]);
    // A live holder: another process keeps the lock for 300 ms; a release here waits and then succeeds.
    store.claim("10.244.1.41", "b", "eth0");
    const holder = spawn(process.execPath, ["-e", `const fs=require("node:fs");fs.writeFileSync(${JSON.stringify(lock)},"x",{flag:"wx"});console.log("held");setTimeout(()=>fs.unlinkSync(${JSON.stringify(lock)}),300)`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((r) => holder.stdout.once("data", () => r()));
    const t0 = Date.now();
    expect(store.release("b", "eth0")).toEqual(["10.244.1.41"]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    await new Promise((r) => holder.once("exit", r));
  });
});
