import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf, writeNode } from "./fixtures.ts";

// Several Twill attachments in one pod, as Multus makes them: the same
// container and namespace, another CNI_IFNAME.

const node = new NodeFixture("tat");
beforeAll(async () => {
  await node.start();
  writeNode(node, ["10.96.0.0/24"]);
});
afterAll(() => node.stop());

const call = (command: string, containerId: string, netns: string, ifname: string, stdin: object) => runCni(node.ns, { command, containerId, netns, ifname, stdin });
const held = () => readdirSync(join(node.dir, "ipam/twill")).filter((f) => /^\d/.test(f)).sort();
const hostLinks = async () => (await execIn(node.ns, ["ip", "-o", "link"])).stdout;
const podRoutes = async (pod: string) => (await execIn(pod, ["ip", "route"])).stdout;
const addrOf = (r: { json: { ips: { address: string }[] } }) => r.json.ips[0]!.address.split("/")[0]!;

describe("several attachments in one pod", () => {
  it("eth0 and net1 each get an address and a host route; the default route stays with eth0; DEL, CHECK and GC act per attachment", async () => {
    const pod = await node.pod();
    const conf = twillConf(node);
    const first = await call("ADD", "multi", pod.path, "eth0", conf);
    expect(first.code, first.stdout).toBe(0);
    const second = await call("ADD", "multi", pod.path, "net1", conf);
    expect(second.code, second.stdout).toBe(0);
    const [ip0, ip1] = [addrOf(first), addrOf(second)];
    expect(ip0).not.toBe(ip1);
    expect(second.json.interfaces[1].name).toBe("net1");
    // The result says what the pod got through net1: no default route.
    expect(second.json.routes ?? []).toEqual([]);
    const routes = await podRoutes(pod.name);
    expect(routes).toContain("default via 169.254.1.1 dev eth0");
    expect(routes).not.toMatch(/default .*dev net1/);
    // Both addresses are routed from the node to their own host end and answer.
    for (const [ip, host] of [[ip0, first.json.interfaces[0].name], [ip1, second.json.interfaces[0].name]]) {
      expect((await execIn(node.ns, ["ip", "route", "get", ip])).stdout).toContain(`dev ${host}`);
      await execIn(node.ns, ["ping", "-c1", "-W2", ip]);
    }
    for (const [r, ifname] of [[first, "eth0"], [second, "net1"]] as const) {
      const check = await call("CHECK", "multi", pod.path, ifname, { ...conf, prevResult: r.json });
      expect(check.code, check.stdout).toBe(0);
    }
    // CHECK of one attachment with the other's result fails: they are told apart.
    expect((await call("CHECK", "multi", pod.path, "net1", { ...conf, prevResult: first.json })).code).not.toBe(0);

    // DEL net1: eth0 keeps its address, link and default route.
    expect((await call("DEL", "multi", pod.path, "net1", conf)).code).toBe(0);
    expect(held()).toEqual([ip0]);
    expect(await hostLinks()).not.toContain(second.json.interfaces[0].name);
    expect(await podRoutes(pod.name)).toContain("default via 169.254.1.1 dev eth0");
    await execIn(node.ns, ["ping", "-c1", "-W2", ip0]);

    // GC that lists only eth0 removes a re-added net1 and keeps eth0.
    const again = await call("ADD", "multi", pod.path, "net1", conf);
    expect(again.code, again.stdout).toBe(0);
    const gc = await runCni(node.ns, { command: "GC", stdin: { ...conf, "cni.dev/valid-attachments": [{ containerID: "multi", ifname: "eth0" }] } });
    expect(gc.code, gc.stdout).toBe(0);
    expect(held()).toEqual([ip0]);
    const links = await hostLinks();
    expect(links).toContain(first.json.interfaces[0].name);
    expect(links).not.toContain(again.json.interfaces[0].name);
    expect((await call("DEL", "multi", pod.path, "eth0", conf)).code).toBe(0);
    expect(held()).toEqual([]);
  });

  it("defaultRoute false on eth0 lets net1 take the default route; the result says so", async () => {
    const pod = await node.pod();
    const r0 = await call("ADD", "dflt", pod.path, "eth0", twillConf(node, { defaultRoute: false }));
    expect(r0.code, r0.stdout).toBe(0);
    expect(r0.json.routes ?? []).toEqual([]);
    const r1 = await call("ADD", "dflt", pod.path, "net1", twillConf(node));
    expect(r1.code, r1.stdout).toBe(0);
    expect(r1.json.routes).toEqual([{ dst: "0.0.0.0/0", gw: "169.254.1.1" }]);
    expect(await podRoutes(pod.name)).toContain("default via 169.254.1.1 dev net1");
    // The pod reaches the node through net1's path.
    await execIn(pod.name, ["ping", "-c1", "-W2", "192.0.2.1"]);
    for (const i of ["net1", "eth0"]) expect((await call("DEL", "dflt", pod.path, i, twillConf(node))).code).toBe(0);
  });

  it("combinations that cannot work fail before anything is created, naming the cause", async () => {
    const pod = await node.pod();
    const conf = twillConf(node);
    expect((await call("ADD", "bad", pod.path, "eth0", conf)).code).toBe(0);
    const before = { held: held(), links: (await hostLinks()).split("\n").length, pod: (await execIn(pod.name, ["ip", "-o", "link"])).stdout };

    const dflt = await call("ADD", "bad", pod.path, "net1", twillConf(node, { defaultRoute: true }));
    expect(dflt.code).not.toBe(0);
    expect(dflt.json.code).toBe(7);
    expect(dflt.json.msg).toContain("default route already goes via eth0");

    const sameRoute = await call("ADD", "bad", pod.path, "net2", twillConf(node, { ipam: { type: "twill-ipam", dataDir: join(node.dir, "ipam"), routes: [{ dst: "0.0.0.0/0" }] } }));
    expect(sameRoute.json.code).toBe(7);
    expect(sameRoute.json.msg).toContain("route 0.0.0.0/0 is already in the pod via eth0");

    // An interface of that name that is not Twill's (here: a veth made by hand inside the pod).
    await execIn(pod.name, ["ip", "link", "add", "net3", "type", "veth", "peer", "name", "net3p"]);
    const foreign = await call("ADD", "bad", pod.path, "net3", conf);
    expect(foreign.json.code).toBe(4);
    expect(foreign.json.msg).toContain("interface net3 already exists in the pod's namespace");
    await execIn(pod.name, ["ip", "link", "del", "net3"]);

    expect(held()).toEqual(before.held);
    expect((await hostLinks()).split("\n").length).toBe(before.links);
    expect((await execIn(pod.name, ["ip", "-o", "link"])).stdout).toBe(before.pod);
    expect((await call("DEL", "bad", pod.path, "eth0", conf)).code).toBe(0);
  });
});
