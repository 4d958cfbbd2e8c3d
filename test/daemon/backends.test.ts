import { afterAll, describe, expect, it } from "vitest";
import { startDaemon } from "../../lab/daemons.ts";
import { pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
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

    // Graceful restart between Twill speakers: node1's daemon killed and
    // restarted; its peers keep its route (stale, then refreshed), so a
    // running flow from node2's pod to node1's loses nothing.
    const flow = execIn(p2!.ns, ["ping", "-q", "-i", "0.01", "-c", "500", "-W", "1", p1!.ip], { allowFailure: true });
    await new Promise((r) => setTimeout(r, 300));
    const pids = await pidsIn(n1!.ns, "daemon/main.ts");
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, "SIGKILL");
    startDaemon(n1!, lab.state.daemonFiles!);
    const out = (await flow).stdout;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![2])).toBe(Number(m![1]));
    await eventually(async () => (await routesOf(n2!.ns)).includes(`${n1!.podCIDR} via ${n1!.ip} dev eth0`), "node2 to keep node1's route");

    await deleteNodeObject(lab, n3!.name);
    for (const n of [n1!, n2!]) await eventually(async () => !(await routesOf(n.ns)).includes(n3!.podCIDR), `${n.name} to withdraw ${n3!.name}'s pod CIDR`);
  });
});
