import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf } from "./fixtures.ts";

// The plugin run alone, as a runtime runs it on a host where nothing else
// (no Twill daemon) turned forwarding on: the routed path it builds must
// work by itself, and the node's global settings must stay as they were.

const node = new NodeFixture("tfw");
beforeAll(async () => {
  await node.start({ forwarding: false });
});
afterAll(() => node.stop());

const sysctl = async (key: string) => (await execIn(node.ns, ["sysctl", "-n", key])).stdout.trim();

describe("forwarding without the node's global setting", () => {
  it("two pods with explicit dual-stack ranges reach each other over IPv4 and IPv6; ip_forward and all.forwarding stay 0", async () => {
    expect(await sysctl("net.ipv4.ip_forward")).toBe("0");
    expect(await sysctl("net.ipv6.conf.all.forwarding")).toBe("0");
    const conf = twillConf(node, {
      nodeFile: join(node.dir, "absent.json"),
      ipam: { type: "twill-ipam", dataDir: join(node.dir, "ipam"), ranges: [[{ subnet: "10.93.0.0/24" }], [{ subnet: "fd93::/64" }]] },
    });
    const a = await node.pod();
    const b = await node.pod();
    const ra = await runCni(node.ns, { command: "ADD", containerId: "fw-a", netns: a.path, ifname: "eth0", stdin: conf });
    const rb = await runCni(node.ns, { command: "ADD", containerId: "fw-b", netns: b.path, ifname: "eth0", stdin: conf });
    expect(ra.code, ra.stdout).toBe(0);
    expect(rb.code, rb.stdout).toBe(0);
    const [v4, v6] = rb.json.ips.map((i: { address: string }) => i.address.split("/")[0]);
    await execIn(a.name, ["ping", "-c1", "-W2", v4]);
    await execIn(a.name, ["ping", "-6", "-c1", "-W2", v6]);
    expect(await sysctl("net.ipv4.ip_forward")).toBe("0");
    expect(await sysctl("net.ipv6.conf.all.forwarding")).toBe("0");
    for (const [id, p] of [["fw-a", a], ["fw-b", b]] as const) {
      expect((await runCni(node.ns, { command: "DEL", containerId: id, netns: p.path, ifname: "eth0", stdin: conf })).code).toBe(0);
    }
  });
});
