import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../daemon/kernel/desired.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { startNamespaceRunner, type NamespaceRunner } from "../support/namespace-runner.ts";

// The daemon's route reconcile over rtnetlink, in a namespace of its own
// (a veth pair made inside it, 10.98.0.1/24 on one end): what it writes, what
// it leaves alone, how it heals and how it reports a route the kernel refuses.

const NS = `twrt${randomBytes(3).toString("hex")}`;
let runner: NamespaceRunner<RouteSpec[], Answer>;

interface Answer {
  written?: number;
  error?: { code: string; message: string; details: string };
}

const sync = (want: RouteSpec[]) => runner.ask(want);

/** `ip route show ARGS`, one route per line, sorted (ip pads some lines with a space). */
const show = async (...args: string[]) =>
  (await exec(["ip", "-n", NS, "route", "show", ...args])).stdout
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .sort()
    .join("\n");
const via = (dst: string, gw = "10.98.0.2"): RouteSpec => ({ dst, via: gw, dev: "v0", onlink: false });
const prefixes = (n: number) => Array.from({ length: n }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`);

beforeAll(async () => {
  runner = await startNamespaceRunner(NS, ["v0", "v1"], "10.98.0.1/24", join(import.meta.dirname, "../support/routes-runner.ts"));
});

afterAll(async () => {
  await runner?.close();
});

describe("route reconcile over rtnetlink", () => {
  it("writes routes and a blackhole with protocol 211, then finds nothing to do", async () => {
    const want = [via("10.200.1.0/24"), via("10.200.2.0/24"), { dst: "10.200.9.0/24", via: "", dev: "", onlink: false, blackhole: true }];
    expect(await sync(want)).toEqual({ written: 3 });
    const listed = (await show("proto", "211")).split("\n");
    expect(listed).toEqual(["10.200.1.0/24 via 10.98.0.2 dev v0", "10.200.2.0/24 via 10.98.0.2 dev v0", "blackhole 10.200.9.0/24"]);
    expect(await sync(want)).toEqual({ written: 0 });
  });

  it("restores a route deleted by hand and corrects one changed by hand", async () => {
    const want = [via("10.200.1.0/24"), via("10.200.2.0/24")];
    await sync(want);
    await exec(["ip", "-n", NS, "route", "del", "10.200.1.0/24", "proto", "211"]);
    await exec(["ip", "-n", NS, "route", "replace", "10.200.2.0/24", "via", "10.98.0.3", "dev", "v0", "proto", "211"]);
    expect(await sync(want)).toEqual({ written: 2 });
    expect((await show("proto", "211")).split("\n")).toEqual(["10.200.1.0/24 via 10.98.0.2 dev v0", "10.200.2.0/24 via 10.98.0.2 dev v0"]);
  });

  it("removes its own routes no longer wanted and leaves routes of other protocols alone", async () => {
    await exec(["ip", "-n", NS, "route", "add", "10.201.0.0/24", "via", "10.98.0.2", "dev", "v0"]);
    await sync([via("10.200.1.0/24"), via("10.200.2.0/24")]);
    expect(await sync([via("10.200.2.0/24")])).toEqual({ written: 1 });
    expect(await show("proto", "211")).toBe("10.200.2.0/24 via 10.98.0.2 dev v0");
    expect(await show("10.201.0.0/24")).toContain("10.201.0.0/24 via 10.98.0.2 dev v0");
  });

  it("onlink next hops outside the device's subnet", async () => {
    expect(await sync([{ dst: "10.200.3.0/24", via: "192.0.2.1", dev: "v0", onlink: true }])).toEqual({ written: 2 });
    expect(await show("proto", "211")).toBe("10.200.3.0/24 via 192.0.2.1 dev v0 onlink");
  });

  it("a route the kernel refuses is named with its errno as a sentence; every other route is still written", async () => {
    const r = await sync([via("10.200.4.0/24"), via("10.200.5.0/24", "192.0.2.7"), { dst: "10.200.6.0/24", via: "10.98.0.2", dev: "nosuch0", onlink: false }, via("10.200.7.0/24")]);
    expect(r.error?.code).toBe("KERNEL_WRITE");
    expect(r.error?.message).toMatch(/^route replace 10\.200\.6\.0\/24 via 10\.98\.0\.2 dev nosuch0 failed: the output device does not exist \(ENODEV\) \(2 of \d+ route writes failed/);
    expect(r.error?.details).toContain("route replace 10.200.5.0/24 via 192.0.2.7 dev v0: the next hop is not reachable: no address on the output device covers it (onlink would be needed) (ENETUNREACH)");
    expect((await show("proto", "211")).split("\n")).toEqual(["10.200.4.0/24 via 10.98.0.2 dev v0", "10.200.7.0/24 via 10.98.0.2 dev v0"]);
  });

  it("thousands of routes in one pass (several batches), then all removed", async () => {
    const many = prefixes(5000).map((p) => via(p));
    expect(await sync(many)).toEqual({ written: 5000 + 2 });
    expect((await show("proto", "211")).split("\n").length).toBe(5000);
    expect(await sync(many)).toEqual({ written: 0 });
    expect(await sync([])).toEqual({ written: 5000 });
    expect(await show("proto", "211")).toBe("");
  });
});
