import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf, writeNode } from "./fixtures.ts";

const node = new NodeFixture("tds");
beforeAll(async () => {
  await node.start();
  await execIn(node.ns, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
  writeNode(node, ["10.98.0.0/24", "fd98::/64"]);
});
afterAll(() => node.stop());

describe("dual-stack", () => {
  it("a node with an IPv4 and an IPv6 pod CIDR gives each pod one address of each, both routed", async () => {
    const a = await node.pod();
    const b = await node.pod();
    const ra = await runCni(node.ns, { command: "ADD", containerId: "ds-a", netns: a.path, ifname: "eth0", stdin: twillConf(node) });
    const rb = await runCni(node.ns, { command: "ADD", containerId: "ds-b", netns: b.path, ifname: "eth0", stdin: twillConf(node) });
    expect(ra.code, ra.stdout).toBe(0);
    expect(rb.code, rb.stdout).toBe(0);
    const addrs = rb.json.ips.map((i: { address: string }) => i.address);
    expect(addrs).toHaveLength(2);
    expect(addrs[0]).toMatch(/^10\.98\.0\.\d+\/32$/);
    expect(addrs[1]).toMatch(/^fd98::[0-9a-f]+\/128$/);
    expect(rb.json.routes).toEqual([
      { dst: "0.0.0.0/0", gw: "169.254.1.1" },
      { dst: "::/0", gw: "fe80::1" },
    ]);
    await execIn(a.name, ["ping", "-c1", "-W2", addrs[0].split("/")[0]]);
    await execIn(a.name, ["ping", "-6", "-c1", "-W2", addrs[1].split("/")[0]]);
    for (const [id, p] of [["ds-a", a], ["ds-b", b]] as const) {
      expect((await runCni(node.ns, { command: "DEL", containerId: id, netns: p.path, ifname: "eth0", stdin: twillConf(node) })).code).toBe(0);
    }
  });
});
