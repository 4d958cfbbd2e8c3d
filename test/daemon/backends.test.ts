import { afterAll, describe, expect, it } from "vitest";
import { startLab, type RunningLab } from "../../lab/lab.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { deleteNodeObject, eventually, routesOf, tcpPeerAddress, unreachablePairs } from "./helpers.ts";

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

describe("bgp backend in the lab", () => {
  it("an iBGP mesh installs each peer's pod CIDR with Twill's protocol and a blackhole for the own block; pods reach each other; a deleted node's route is withdrawn", async () => {
    const lab = await startLab({ nodes: 3, podsPerNode: 1, backend: "bgp" });
    labs.push(lab);
    const [n1, n2, n3] = lab.state.nodes;
    await eventually(async () => {
      const routes = await routesOf(n1!.ns);
      return routes.includes(`${n2!.podCIDR} via ${n2!.ip} dev eth0`) && routes.includes(`${n3!.podCIDR} via ${n3!.ip} dev eth0`);
    }, "node1 to learn both peers' pod CIDRs");
    expect(await routesOf(n1!.ns)).toContain(`blackhole ${n1!.podCIDR}`);
    expect((await execIn(n1!.ns, ["ip", "link", "show", "twill.vxlan"], { allowFailure: true })).code).not.toBe(0);
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
    const [p1, p2] = lab.state.pods;
    expect(await tcpPeerAddress(p1!, p2!.ns, p2!.ip, 7202)).toBe(p1!.ip);

    await deleteNodeObject(lab, n3!.name);
    for (const n of [n1!, n2!]) await eventually(async () => !(await routesOf(n.ns)).includes(n3!.podCIDR), `${n.name} to withdraw ${n3!.name}'s pod CIDR`);
  });
});
