import { describe, expect, it } from "vitest";
import type { PathAttrs } from "../../daemon/bgp/codec/update-types.ts";
import { exportRoute } from "../../daemon/bgp/rib/export.ts";
import { Rib } from "../../daemon/bgp/rib/rib.ts";
import { LOCAL, type PeerInfo } from "../../daemon/bgp/rib/route.ts";

const P = "10.244.1.0/24";
const seq = (...asns: number[]) => [{ type: 2, asns }];
const base: PathAttrs = { origin: 0, asPath: seq(65001), nextHop: "192.0.2.1" };

let n = 0;
function peer(p: Partial<PeerInfo> & { id: string }): PeerInfo {
  n++;
  return { address: BigInt(n), asn: 65001, bgpId: 1000 + n, internal: false, rrClient: false, ...p };
}

function ribWith(...peers: PeerInfo[]) {
  const rib = new Rib({ asn: 64512, routerId: 1, clusterId: undefined });
  for (const p of peers) rib.setPeer(p);
  return rib;
}
const announce = (rib: Rib, id: string, attrs: PathAttrs, prefix = P) => rib.update(id, [{ prefix, attrs, nextHop: attrs.nextHop ?? "192.0.2.1" }], []);

describe("RIB best path (RFC 4271 §9.1.2)", () => {
  it("higher LOCAL_PREF wins over a shorter path", () => {
    const rib = ribWith(peer({ id: "a", internal: true, asn: 64512 }), peer({ id: "b", internal: true, asn: 64512 }));
    announce(rib, "a", { ...base, localPref: 100, asPath: seq(1) });
    announce(rib, "b", { ...base, localPref: 200, asPath: seq(1, 2, 3) });
    expect(rib.best(P)?.peer).toBe("b");
  });

  it("then the shorter AS_PATH (an AS_SET counts one), then the lower ORIGIN", () => {
    const rib = ribWith(peer({ id: "a" }), peer({ id: "b" }), peer({ id: "c" }));
    announce(rib, "a", { ...base, asPath: seq(65001, 2, 3) });
    announce(rib, "b", { ...base, asPath: [{ type: 2, asns: [65001] }, { type: 1, asns: [5, 6, 7] }], origin: 2 });
    expect(rib.best(P)?.peer).toBe("b");
    announce(rib, "c", { ...base, asPath: seq(65001, 9), origin: 0 });
    expect(rib.best(P)?.peer).toBe("c");
  });

  it("MED is compared only between routes from the same neighbouring AS", () => {
    const a = peer({ id: "a", asn: 65001, bgpId: 10 });
    const b = peer({ id: "b", asn: 65001, bgpId: 20 });
    const c = peer({ id: "c", asn: 65002, bgpId: 5 });
    const rib = ribWith(a, b, c);
    announce(rib, "a", { ...base, med: 50 });
    announce(rib, "b", { ...base, med: 10 });
    expect(rib.best(P)?.peer).toBe("b");
    // c is in another AS: its higher MED does not count against it; it wins on BGP Identifier.
    announce(rib, "c", { ...base, asPath: seq(65002), med: 500 });
    expect(rib.best(P)?.peer).toBe("c");
  });

  it("eBGP over iBGP, then the lowest BGP Identifier (ORIGINATOR_ID for reflected routes), then the lowest peer address", () => {
    const i = peer({ id: "i", internal: true, asn: 64512, bgpId: 1 });
    const e = peer({ id: "e", bgpId: 99 });
    const rib = ribWith(i, e);
    announce(rib, "i", { ...base, asPath: seq(65001) });
    announce(rib, "e", base);
    expect(rib.best(P)?.peer).toBe("e");

    const x = peer({ id: "x", internal: true, asn: 64512, bgpId: 5 });
    const y = peer({ id: "y", internal: true, asn: 64512, bgpId: 9 });
    const rib2 = ribWith(x, y);
    announce(rib2, "x", { ...base, originatorId: 50 });
    announce(rib2, "y", base);
    expect(rib2.best(P)?.peer).toBe("y");

    const s = peer({ id: "s", internal: true, asn: 64512, bgpId: 7, address: 2n });
    const t = peer({ id: "t", internal: true, asn: 64512, bgpId: 7, address: 1n });
    const rib3 = ribWith(s, t);
    announce(rib3, "s", base);
    announce(rib3, "t", base);
    expect(rib3.best(P)?.peer).toBe("t");
  });

  it("a route Twill originates beats any learned route for the same prefix", () => {
    const rib = ribWith(peer({ id: "a" }));
    announce(rib, "a", { ...base, asPath: [] });
    rib.originate(P, { origin: 0 }, "10.0.0.1");
    expect(rib.best(P)?.peer).toBe(LOCAL);
  });

  it("changes report the new best, and the last withdrawal reports the prefix gone", () => {
    const rib = ribWith(peer({ id: "a" }), peer({ id: "b", asn: 65002 }));
    expect(announce(rib, "a", base).map((c) => c.best?.peer)).toEqual(["a"]);
    expect(announce(rib, "b", { ...base, asPath: seq(65002, 1) })).toEqual([]);
    expect(rib.update("a", [], [P]).map((c) => c.best?.peer)).toEqual(["b"]);
    expect(rib.clearPeer("b")).toEqual([{ prefix: P, best: undefined }]);
    expect(rib.size).toBe(0);
  });

  it("candidates grow from one route to several and back without losing any (the single-route layout)", () => {
    const rib = ribWith(peer({ id: "a" }), peer({ id: "b", asn: 65002 }), peer({ id: "c", asn: 65003 }));
    announce(rib, "a", base);
    expect(rib.update("b", [], [P])).toEqual([]); // b never announced P
    announce(rib, "b", { ...base, asPath: seq(65002, 1) });
    announce(rib, "c", { ...base, asPath: seq(65003, 1, 2) });
    rib.update("a", [], [P]);
    expect(rib.best(P)?.peer).toBe("b");
    rib.update("b", [], [P]);
    expect(rib.best(P)?.peer).toBe("c");
    expect(rib.adjRibIn("c").map((r) => r.peer)).toEqual(["c"]);
    expect(rib.adjRibIn("b")).toEqual([]);
    announce(rib, "a", base);
    expect(rib.best(P)?.peer).toBe("a");
    expect(rib.update("c", [], [P])).toEqual([]);
    expect(rib.adjRibIn("a").map((r) => r.prefix)).toEqual([P]);
    expect(rib.markStale("a")).toBe(1);
    expect(rib.sweepStale("a")).toEqual([{ prefix: P, best: undefined }]);
    expect(rib.size).toBe(0);
  });
});

describe("RIB loop checks", () => {
  it("our own AS in an eBGP path, our router ID as ORIGINATOR_ID, our cluster in CLUSTER_LIST: the route is ignored (and replaces the older one)", () => {
    const rib = new Rib({ asn: 64512, routerId: 1, clusterId: 77 });
    rib.setPeer(peer({ id: "e" }));
    rib.setPeer(peer({ id: "i", internal: true, asn: 64512 }));
    announce(rib, "e", base);
    announce(rib, "e", { ...base, asPath: seq(65001, 64512) });
    expect(rib.best(P)).toBeUndefined();
    announce(rib, "i", { ...base, originatorId: 1 });
    expect(rib.best(P)).toBeUndefined();
    announce(rib, "i", { ...base, clusterList: [5, 77] });
    expect(rib.best(P)).toBeUndefined();
    announce(rib, "i", { ...base, clusterList: [5] });
    expect(rib.best(P)?.peer).toBe("i");
  });
});

describe("RIB graceful restart (RFC 4724 §4.2)", () => {
  it("a restarting peer's routes stay as stale; refreshed ones are kept, the rest swept", () => {
    const rib = ribWith(peer({ id: "a" }));
    announce(rib, "a", base, "10.1.0.0/16");
    announce(rib, "a", base, "10.2.0.0/16");
    expect(rib.markStale("a")).toBe(2);
    expect(rib.best("10.1.0.0/16")?.stale).toBe(true);
    announce(rib, "a", base, "10.1.0.0/16");
    expect(rib.best("10.1.0.0/16")?.stale).toBe(false);
    expect(rib.sweepStale("a")).toEqual([{ prefix: "10.2.0.0/16", best: undefined }]);
    expect(rib.best("10.1.0.0/16")?.peer).toBe("a");
  });
});

describe("Export rules (RFC 4271 §5.1, RFC 4456 §6, §8)", () => {
  const local = { asn: 64512, routerId: 1, clusterId: undefined };
  const rr = { ...local, clusterId: 1 };
  const ibgp = (id: string, rrClient = false) => peer({ id, internal: true, asn: 64512, rrClient });
  const route = (from: string, attrs: PathAttrs = base) => ({ prefix: P, peer: from, attrs, nextHop: "192.0.2.1", stale: false });

  it("to eBGP: our AS prepended, next hop self, no LOCAL_PREF/ORIGINATOR_ID/CLUSTER_LIST, a neighbour's MED dropped", () => {
    const from = peer({ id: "e1" });
    const out = exportRoute(route("e1", { ...base, med: 7, localPref: 300, originatorId: 9, clusterList: [1] }), from, peer({ id: "e2", asn: 65009 }), local);
    expect(out?.nextHopSelf).toBe(true);
    expect(out?.attrs).toMatchObject({ asPath: seq(64512, 65001) });
    expect(out?.attrs.med ?? out?.attrs.localPref ?? out?.attrs.originatorId ?? out?.attrs.clusterList).toBeUndefined();
  });

  it("never back to the peer it came from", () => {
    const e = peer({ id: "e1" });
    expect(exportRoute(route("e1"), e, e, local)).toBeUndefined();
  });

  it("local routes go to iBGP peers with LOCAL_PREF and next hop self", () => {
    expect(exportRoute(route(LOCAL, { origin: 0 }), undefined, ibgp("i"), local)).toEqual({ attrs: { origin: 0, asPath: [], localPref: 100, unknown: undefined }, nextHopSelf: true });
  });

  it("iBGP-learned routes are not passed to iBGP peers unless Twill reflects, and then client ↔ anyone only", () => {
    const c1 = ibgp("c1", true);
    const c2 = ibgp("c2", true);
    const nc1 = ibgp("nc1");
    const nc2 = ibgp("nc2");
    expect(exportRoute(route("nc1"), nc1, nc2, local)).toBeUndefined();
    expect(exportRoute(route("nc1"), nc1, nc2, rr)).toBeUndefined();
    expect(exportRoute(route("nc1"), nc1, c1, rr)).toBeDefined();
    expect(exportRoute(route("c1"), c1, nc1, rr)).toBeDefined();
    const reflected = exportRoute(route("c1", { ...base, clusterList: [42] }), c1, c2, rr);
    expect(reflected).toEqual({ attrs: { ...base, localPref: 100, originatorId: c1.bgpId, clusterList: [1, 42], unknown: undefined }, nextHopSelf: false });
    // Not back to the originator.
    expect(exportRoute(route("c1", { ...base, originatorId: c2.bgpId }), c1, c2, rr)).toBeUndefined();
  });

  it("unknown optional transitive attributes are passed on with the Partial bit", () => {
    const out = exportRoute(route("e1", { ...base, unknown: [{ flags: 0xc0, code: 99, value: Uint8Array.of(1) }] }), peer({ id: "e1" }), ibgp("i"), local);
    expect(out?.attrs.unknown).toEqual([{ flags: 0xe0, code: 99, value: Uint8Array.of(1) }]);
  });
});
