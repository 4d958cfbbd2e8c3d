import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { startBird, type PeerDaemon } from "./support/daemons.ts";
import { createLan, waitFor, type Lan } from "./support/lan.ts";

// The bgp backend end to end on real kernels: two Twill nodes in namespaces
// form the iBGP mesh (AS 64512) and install each other's pod CIDR with
// protocol 211 through the daemon's reconcile; a BIRD node in the same AS
// shows what Twill announces and feeds a route of its own.

const nodes = [
  { name: "node1", ip: "10.77.0.1", podCIDRs: ["10.244.1.0/24"], annotations: {} },
  { name: "node2", ip: "10.77.0.2", podCIDRs: ["10.244.2.0/24"], annotations: {} },
  { name: "node3", ip: "10.77.0.3", podCIDRs: ["10.244.3.0/24"], annotations: {} },
];

async function twillRoutes(ns: string): Promise<string[]> {
  const out = (await execIn(ns, ["ip", "route", "show", "proto", "211"])).stdout;
  return out.split("\n").map((l) => l.trim().replace(/\s+/g, " ")).filter(Boolean).sort();
}

describe("bgp backend: iBGP mesh into the kernel through the reconcile", () => {
  let lan: Lan;
  let bird: PeerDaemon;
  const procs: ChildProcess[] = [];
  let stderr = "";

  beforeAll(async () => {
    lan = await createLan(3);
    try {
      // node3 is BIRD standing in for a third node: node1 and node2 peer with it because it is in their view.
      bird = await startBird({ ns: lan.ns(3), dir: lan.dir, asn: 64512, routerId: "10.77.0.3", twill: { address: "10.77.0.1", asn: 64512 }, holdTime: 30, announce: ["10.244.3.0/24"], clients: ["10.77.0.2"] });
      for (const i of [1, 2]) {
        const file = join(lan.dir, `node${i}.json`);
        writeFileSync(file, JSON.stringify({ self: `node${i}`, nodes }));
        const p = spawn("ip", ["netns", "exec", lan.ns(i), process.execPath, "test/bgp/support/backend-runner.ts", file], { stdio: ["ignore", "ignore", "pipe"] });
        p.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        procs.push(p);
      }
    } catch (err) {
      await lan.close();
      throw err;
    }
  });
  afterAll(async () => {
    for (const p of procs) p.kill("SIGKILL");
    await bird?.stop();
    await lan?.close();
  });

  it("each node has a blackhole for its own block and routes to the others' pod CIDRs via their addresses, protocol 211", async () => {
    const want1 = ["10.244.2.0/24 via 10.77.0.2 dev eth0", "10.244.3.0/24 via 10.77.0.3 dev eth0", "blackhole 10.244.1.0/24"];
    const want2 = ["10.244.1.0/24 via 10.77.0.1 dev eth0", "10.244.3.0/24 via 10.77.0.3 dev eth0", "blackhole 10.244.2.0/24"];
    const strip = (rs: string[]) => rs.map((r) => r.replace(/ proto 211/, "").replace(/ scope \w+/, "").replace(/ metric \d+/, ""));
    await waitFor(`node1 routes ${stderr.slice(-500)}`, async () => (JSON.stringify(strip(await twillRoutes(lan.ns(1)))) === JSON.stringify(want1) ? true : undefined));
    await waitFor("node2 routes", async () => (JSON.stringify(strip(await twillRoutes(lan.ns(2)))) === JSON.stringify(want2) ? true : undefined));
    // Traffic follows them: node1 reaches an address inside node2's block (a /32 on node2 beats its blackhole).
    await execIn(lan.ns(2), ["ip", "addr", "add", "10.244.2.1/32", "dev", "lo"]);
    const ping = await execIn(lan.ns(1), ["ping", "-c", "1", "-W", "2", "10.244.2.1"], { allowFailure: true });
    expect(ping.code).toBe(0);
  });

  it("BIRD (a third iBGP speaker) learned both nodes' blocks from them", async () => {
    const learned = await bird.learned();
    expect([learned.get("10.244.1.0/24"), learned.get("10.244.2.0/24")]).toEqual(["10.77.0.1", "10.77.0.2"]);
  });

  it("a withdrawn route leaves the kernel; the blackhole stays", async () => {
    await bird.withdraw("10.244.3.0/24");
    await waitFor("node1 drops 10.244.3.0/24", async () => ((await twillRoutes(lan.ns(1))).some((r) => r.startsWith("10.244.3.0/24")) ? undefined : true));
    expect((await twillRoutes(lan.ns(1))).some((r) => r.startsWith("blackhole 10.244.1.0/24"))).toBe(true);
  });
});
