import { afterAll, describe, expect, it } from "vitest";
import { startLab, type RunningLab } from "../../lab/lab.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { routesOf, tcpPeerAddress, unreachablePairs } from "./helpers.ts";

// The other two ways of connecting nodes, each in a small lab of its own.

const labs: RunningLab[] = [];
afterAll(async () => {
  for (const l of labs) await l.close();
});

describe("host-gw backend", () => {
  it("routes each remote pod CIDR via the peer's underlay address; every pod reaches every other", async () => {
    const lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "host-gw" });
    labs.push(lab);
    const [n1, n2] = lab.state.nodes;
    expect(await routesOf(n1!.ns)).toContain(`${n2!.podCIDR} via ${n2!.ip} dev eth0`);
    expect((await execIn(n1!.ns, ["ip", "link", "show", "twill.vxlan"], { allowFailure: true })).code).not.toBe(0);
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
    const [p1, p2] = lab.state.pods;
    expect(await tcpPeerAddress(p1!, p2!.ns, p2!.ip, 7201)).toBe(p1!.ip);
  });
});

describe("vxlan with directRouting", () => {
  it("peers on the same L2 subnet get a plain route instead of the tunnel", async () => {
    const lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", directRouting: true });
    labs.push(lab);
    const [n1, n2] = lab.state.nodes;
    const routes = await routesOf(n1!.ns);
    expect(routes).toContain(`${n2!.podCIDR} via ${n2!.ip} dev eth0`);
    expect(routes).not.toContain("twill.vxlan");
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
  });
});
