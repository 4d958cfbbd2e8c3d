import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../daemon/kernel/desired.ts";
import { RouteWriter } from "../../daemon/kernel/route-writer.ts";
import { KernelRoutes } from "../../daemon/kernel/routes.ts";
import { exec } from "../../lib/kernel/exec.ts";

// The persistent route writer and the route diff on a real kernel, in a
// namespace of this test's own: errors belong to the write that caused them,
// writes may overlap, and the kernel is read only when asked (a route deleted
// behind Twill's back comes back on the next read).

const ns = `twrw${randomBytes(3).toString("hex")}`;
const ip = (...args: string[]) => exec(["ip", "-n", ns, ...args]);

async function twillRoutes(): Promise<string[]> {
  const out = (await ip("route", "show", "proto", "211")).stdout;
  return out.split("\n").map((l) => l.trim().replace(/\s+/g, " ")).filter(Boolean).sort();
}

const via = (dst: string): RouteSpec => ({ dst, via: "10.88.0.2", dev: "tw0", onlink: false });

describe("route writer and kernel routes", () => {
  beforeAll(async () => {
    await exec(["ip", "netns", "add", ns]);
    await ip("link", "add", "tw0", "type", "veth", "peer", "name", "tw1");
    await ip("link", "set", "tw1", "up");
    await ip("addr", "add", "10.88.0.1/24", "dev", "tw0");
    await ip("link", "set", "tw0", "up");
  });
  afterAll(async () => {
    await exec(["ip", "netns", "del", ns], { allowFailure: true });
  });

  it("reports each failed line with the write it belongs to, even when writes overlap", async () => {
    const w = new RouteWriter(ns);
    try {
      const a = w.write(["route replace 10.1.0.0/24 via 10.88.0.2 dev tw0 proto 211", "route replace 10.1.1.0/24 via 192.0.2.1 dev tw0 proto 211"]);
      const b = w.write(["route replace blackhole 10.1.2.0/24 proto 211"]);
      const c = w.write(["route del 10.1.9.0/24 proto 211", "route replace 10.1.3.0/24 via 10.88.0.2 dev tw0 proto 211"]);
      const [ea, eb, ec] = await Promise.all([a, b, c]);
      expect(ea.map((e) => e.line)).toEqual(["route replace 10.1.1.0/24 via 192.0.2.1 dev tw0 proto 211"]);
      expect(ea[0]!.error).toMatch(/gateway/i);
      expect(eb).toEqual([]);
      expect(ec.map((e) => e.line)).toEqual(["route del 10.1.9.0/24 proto 211"]);
      expect(await twillRoutes()).toEqual(["10.1.0.0/24 via 10.88.0.2 dev tw0", "10.1.3.0/24 via 10.88.0.2 dev tw0", "blackhole 10.1.2.0/24"]);
      // The same process keeps working after failures.
      expect(await w.write(["route del 10.1.0.0/24 proto 211", "route del 10.1.3.0/24 proto 211", "route del blackhole 10.1.2.0/24 proto 211"])).toEqual([]);
      expect(await twillRoutes()).toEqual([]);
    } finally {
      w.close();
    }
  });

  it("diffs against what it wrote, reads the kernel only when asked, and heals then", async () => {
    const k = new KernelRoutes(ns);
    try {
      const want = [via("10.2.0.0/24"), via("10.2.1.0/24"), { dst: "10.2.2.0/24", via: "", dev: "", onlink: false, blackhole: true }];
      expect(await k.sync(want, true)).toBe(3);
      expect(await k.sync(want, false)).toBe(0);
      // Deleted behind Twill's back: a pass that trusts its record does not see it, a kernel read does.
      await ip("route", "del", "10.2.1.0/24", "proto", "211");
      expect(await k.sync(want, false)).toBe(0);
      expect(await twillRoutes()).not.toContain("10.2.1.0/24 via 10.88.0.2 dev tw0");
      expect(await k.sync(want, true)).toBe(1);
      expect(await twillRoutes()).toEqual(["10.2.0.0/24 via 10.88.0.2 dev tw0", "10.2.1.0/24 via 10.88.0.2 dev tw0", "blackhole 10.2.2.0/24"]);
      // Changes and removals in one pass.
      const next = [{ ...via("10.2.0.0/24"), via: "10.88.0.3" }, via("10.2.3.0/24")];
      expect(await k.sync(next, false)).toBe(4);
      expect(await twillRoutes()).toEqual(["10.2.0.0/24 via 10.88.0.3 dev tw0", "10.2.3.0/24 via 10.88.0.2 dev tw0"]);
    } finally {
      k.close();
    }
  });

  it("a failed write names the line and makes the next pass read the kernel", async () => {
    const k = new KernelRoutes(ns);
    try {
      await k.sync([], true);
      const bad = { ...via("10.3.1.0/24"), via: "192.0.2.1" };
      const err = await k.sync([via("10.3.0.0/24"), bad], false).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "KERNEL_WRITE" });
      expect((err as Error).message).toContain("route replace 10.3.1.0/24 via 192.0.2.1");
      // The good line went in; the record was dropped, so this pass re-reads and writes only the fix.
      expect(await k.sync([via("10.3.0.0/24"), via("10.3.1.0/24")], false)).toBe(1);
      expect(await twillRoutes()).toEqual(["10.3.0.0/24 via 10.88.0.2 dev tw0", "10.3.1.0/24 via 10.88.0.2 dev tw0"]);
    } finally {
      k.close();
    }
  });
});
