import type { V1Node } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { hostGwBackend } from "../../daemon/backends/hostgw/hostgw.ts";
import { vxlanBackend } from "../../daemon/backends/vxlan/vxlan.ts";
import { buildView } from "../../daemon/cluster/view.ts";
import { parseConfig } from "../../daemon/config.ts";
import { masqueradeRuleset } from "../../daemon/kernel/masquerade.ts";
import { podGsoSizes } from "../../daemon/kernel/underlay.ts";
import { parseNodeFile } from "../../lib/node-file.ts";

const cfg = parseConfig("clusterCIDR: 10.244.0.0/16\n");
const node = (name: string, ip: string, podCIDR: string | undefined, annotations: Record<string, string> = {}): V1Node => ({
  metadata: { name, annotations },
  spec: podCIDR ? { podCIDR } : {},
  status: { addresses: [{ type: "InternalIP", address: ip }] },
});
const view = buildView([
  node("a", "172.30.0.11", "10.244.1.0/24", { "twill.dev/vtep-mac": "02:00:00:00:00:0a" }),
  node("b", "172.30.0.12", "10.244.2.0/24", { "twill.dev/vtep-mac": "02:00:00:00:00:0b" }),
  node("c", "172.30.9.13", "10.244.3.0/24", { "twill.dev/vtep-mac": "02:00:00:00:00:0c" }),
  node("fresh", "172.30.0.14", undefined),
  node("broken", "172.30.0.15", "10.244.5.0/24", { "twill.dev/vtep-mac": "not-a-mac" }),
]);
const local = { info: view.nodes.get("a")!, underlay: { dev: "eth0", address: "172.30.0.11", prefix: 24, mtu: 1500 } };

describe("cluster view", () => {
  it("leaves out nodes without a pod CIDR or with broken annotations, with the reason, and keeps the rest", () => {
    expect([...view.nodes.keys()]).toEqual(["a", "b", "c"]);
    expect(view.skipped.get("fresh")).toEqual({ code: "NODE_NO_POD_CIDR", reason: expect.stringContaining("no spec.podCIDR") });
    expect(view.skipped.get("broken")).toEqual({ code: "NODE_BAD_ANNOTATION", reason: expect.stringContaining("not a MAC") });
  });
  it("takes a hand-written upper-case VTEP MAC and a long-form address in the kernel's spelling, so they never look like drift", () => {
    const v = buildView([node("x", "fd00:0:0::0001", "10.244.9.0/24", { "twill.dev/vtep-mac": "02:AB:00:00:00:0C" })]);
    expect(v.nodes.get("x")!.annotations["twill.dev/vtep-mac"]).toBe("02:ab:00:00:00:0c");
    expect(v.nodes.get("x")!.ip).toBe("fd00::1");
  });
  it("prefers the public-ip annotation over InternalIP", () => {
    const v = buildView([node("x", "10.0.0.1", "10.244.9.0/24", { "twill.dev/public-ip": "192.0.2.9" })]);
    expect(v.nodes.get("x")!.ip).toBe("192.0.2.9");
  });
});

describe("vxlan desired state", () => {
  it("per peer: neighbour, FDB entry and onlink route through the tunnel; the device holds the pod CIDR's network address", async () => {
    const b = vxlanBackend(cfg);
    const s = b.desired(view, local, 1450);
    expect(s.links).toEqual([expect.objectContaining({ name: "twill.vxlan", vni: 1, port: 8472, local: "172.30.0.11", dev: "eth0", mtu: 1450, addresses: ["10.244.1.0/32"] })]);
    expect(s.neighbours).toContainEqual({ ip: "10.244.2.0", mac: "02:00:00:00:00:0b", dev: "twill.vxlan" });
    expect(s.fdb).toContainEqual({ mac: "02:00:00:00:00:0b", dev: "twill.vxlan", dst: "172.30.0.12" });
    expect(s.routes).toContainEqual({ dst: "10.244.2.0/24", via: "10.244.2.0", dev: "twill.vxlan", onlink: true });
    expect(s.routes.map((r) => r.dst).sort()).toEqual(["10.244.2.0/24", "10.244.3.0/24"]);
  });
  it("two peers claiming one VTEP MAC: the first by name keeps it, the other is left out and named, and one FDB entry exists per MAC", async () => {
    const clash = buildView([
      node("a", "172.30.0.11", "10.244.1.0/24", { "twill.dev/vtep-mac": "02:00:00:00:00:0a" }),
      node("b", "172.30.0.12", "10.244.2.0/24", { "twill.dev/vtep-mac": "02:00:00:00:00:0b" }),
      node("d", "172.30.0.14", "10.244.4.0/24", { "twill.dev/vtep-mac": "02:00:00:00:00:0B" }),
      node("e", "172.30.0.15", "10.244.5.0/24", { "twill.dev/vtep-mac": "02:00:00:00:00:0a" }),
    ]);
    const a = { ...local, info: clash.nodes.get("a")! };
    const b = vxlanBackend(cfg);
    await b.prepare(a); // no twill.vxlan device here: the MAC comes from the annotation
    const s = b.desired(clash, a, 1450);
    expect(s.fdb).toEqual([{ mac: "02:00:00:00:00:0b", dev: "twill.vxlan", dst: "172.30.0.12" }]);
    expect(s.routes.map((r) => r.dst)).toEqual(["10.244.2.0/24"]);
    expect(s.leftOut).toEqual([
      { node: "d", code: "VTEP_MAC_CONFLICT", reason: expect.stringContaining("already node b's VTEP MAC") },
      { node: "e", code: "VTEP_MAC_CONFLICT", reason: expect.stringContaining("already this node's own VTEP MAC") },
    ]);
    // With directRouting a same-subnet peer needs no FDB entry, so its MAC clashes with nothing.
    const direct = vxlanBackend({ ...cfg, vxlan: { ...cfg.vxlan, directRouting: true } });
    await direct.prepare(a);
    expect(direct.desired(clash, a, 1450).leftOut).toEqual([]);
  });
  it("with directRouting, only peers on the same L2 subnet bypass the tunnel", () => {
    const s = vxlanBackend({ ...cfg, vxlan: { ...cfg.vxlan, directRouting: true } }).desired(view, local, 1450);
    expect(s.routes).toContainEqual({ dst: "10.244.2.0/24", via: "172.30.0.12", dev: "eth0", onlink: false });
    expect(s.routes).toContainEqual({ dst: "10.244.3.0/24", via: "10.244.3.0", dev: "twill.vxlan", onlink: true });
  });
});

describe("host-gw desired state", () => {
  it("refuses a peer outside the local L2 subnet, naming it", () => {
    expect(() => hostGwBackend(cfg).desired(view, local, 1500)).toThrow(/node c \(172\.30\.9\.13\)/);
  });
  it("routes each peer's pod CIDR via its underlay address", () => {
    const l2 = buildView([node("a", "172.30.0.11", "10.244.1.0/24"), node("b", "172.30.0.12", "10.244.2.0/24")]);
    expect(hostGwBackend(cfg).desired(l2, { ...local, info: l2.nodes.get("a")! }, 1500).routes).toEqual([{ dst: "10.244.2.0/24", via: "172.30.0.12", dev: "eth0", onlink: false }]);
  });
});

describe("masquerade ruleset", () => {
  it("masquerades the cluster CIDR's traffic to anything outside it, and carries a content hash", () => {
    const r = masqueradeRuleset(["10.244.0.0/16"]);
    expect(r).toContain("ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade");
    expect(r).toMatch(/comment "twill:[0-9a-f]{16}"/);
    expect(masqueradeRuleset(["10.245.0.0/16"])).not.toBe(r);
    expect(r).not.toContain("notrack");
  });
  it("exempts from conntrack only the tunnel's own packets, not everything on its port (a UDP Service may use 8472)", () => {
    const r = masqueradeRuleset(["10.244.0.0/16"], [{ address: "192.0.2.1", port: 8472 }]);
    const chain = (name: string) => new RegExp(`chain ${name} \\{\\n([^}]*)\\n\\t\\}`).exec(r)![1]!.split("\n").map((l) => l.trim());
    expect(chain("overlay-in")).toEqual(["type filter hook prerouting priority raw; policy accept;", "ip daddr 192.0.2.1 udp dport 8472 notrack"]);
    // A local process's own datagram (a hostNetwork client of a Service) keeps conntrack; the rest from the underlay address is the tunnel.
    expect(chain("overlay-out")).toEqual(["type filter hook output priority raw; policy accept;", "ip saddr 192.0.2.1 udp dport 8472 meta skuid >= 0 accept", "ip saddr 192.0.2.1 udp dport 8472 notrack"]);
    expect(r).not.toMatch(/^\s*udp dport/m);
    expect(masqueradeRuleset(["10.244.0.0/16"], [{ address: "192.0.2.9", port: 8472 }])).not.toBe(r);
  });
  it("one pair of rules per distinct tunnel endpoint; none for an IPv6 underlay (the table is IPv4)", () => {
    const twice = masqueradeRuleset(["10.244.0.0/16"], [{ address: "192.0.2.1", port: 8472 }, { address: "192.0.2.1", port: 8472 }]);
    expect(twice).toBe(masqueradeRuleset(["10.244.0.0/16"], [{ address: "192.0.2.1", port: 8472 }]));
    expect(masqueradeRuleset(["10.244.0.0/16"], [{ address: "2001:db8::1", port: 8472 }])).toBe(masqueradeRuleset(["10.244.0.0/16"]));
  });
});

describe("BIG TCP for pods", () => {
  const limits = (gso4: number, gro4: number, gso6 = 65536, gro6 = 65536) => ({ gso: { ipv4: gso4, ipv6: gso6 }, gro: { ipv4: gro4, ipv6: gro6 } });
  it("follows the underlay: the pod's end builds what the underlay sends whole, the node's end passes what its GRO builds", () => {
    expect(podGsoSizes(limits(196608, 196608), false)).toEqual({ pod: { ipv4: 196608, ipv6: 65536 }, host: { ipv4: 196608, ipv6: 65536 } });
    expect(podGsoSizes(limits(65536, 196608), false)).toEqual({ pod: { ipv4: 65536, ipv6: 65536 }, host: { ipv4: 196608, ipv6: 65536 } });
    // A kernel before 6.3 names no IPv4 limit: IPv4 stays at 64 KiB, IPv6 may still be BIG.
    expect(podGsoSizes(limits(0, 0, 185000, 185000), false)).toEqual({ pod: { ipv4: 65536, ipv6: 185000 }, host: { ipv4: 65536, ipv6: 185000 } });
  });
  it("nothing to write at the kernel's default, without a reading, or through a tunnel", () => {
    expect(podGsoSizes(limits(65536, 65536), false)).toBeUndefined();
    expect(podGsoSizes(undefined, false)).toBeUndefined();
    expect(podGsoSizes(limits(196608, 196608), true)).toBeUndefined();
  });
  it("the node file refuses sizes no device takes", () => {
    const base = { version: 1, nodeName: "a", podCIDRs: ["10.244.1.0/24"], mtu: 1500, clusterCIDRs: ["10.244.0.0/16"] };
    const ok = { ...base, gso: { pod: { ipv4: 196608, ipv6: 65536 }, host: { ipv4: 196608, ipv6: 65536 } } };
    expect(parseNodeFile(JSON.stringify(ok), "f").gso).toEqual(ok.gso);
    expect(() => parseNodeFile(JSON.stringify({ ...base, gso: { pod: { ipv4: 1e9, ipv6: 65536 }, host: ok.gso.host } }), "f")).toThrow(/gso needs pod and host sizes/);
    expect(() => parseNodeFile(JSON.stringify({ ...base, gso: { pod: ok.gso.pod } }), "f")).toThrow(expect.objectContaining({ code: "NODE_FILE_INVALID" }));
  });
});
