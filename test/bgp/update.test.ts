import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeMessage } from "../../daemon/bgp/codec/decode.ts";
import { decodeUpdate } from "../../daemon/bgp/codec/update-decode.ts";
import { encodeAnnouncements, encodeUpdate, encodeWithdrawals } from "../../daemon/bgp/codec/update-encode.ts";
import type { Update, UpdateContext, UpdateResult } from "../../daemon/bgp/codec/update-types.ts";

const ibgp4: UpdateContext = { fourOctetAs: true, external: false, peerAs: 64512 };
const ebgp4: UpdateContext = { fourOctetAs: true, external: true, peerAs: 65001 };
const ebgp2: UpdateContext = { fourOctetAs: false, external: true, peerAs: 65001 };

const be16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const attr = (flags: number, code: number, value: number[]) => [flags, code, value.length, ...value];
const body = (withdrawn: number[], attrs: number[], nlri: number[]) => Uint8Array.from([...be16(withdrawn.length), ...withdrawn, ...be16(attrs.length), ...attrs, ...nlri]);

const ORIGIN = attr(0x40, 1, [0]);
const asPath4 = (...asns: number[]) => attr(0x40, 2, [2, asns.length, ...asns.flatMap(be32)]);
const asPath2 = (...asns: number[]) => attr(0x40, 2, [2, asns.length, ...asns.flatMap(be16)]);
const NEXT_HOP = attr(0x40, 3, [10, 0, 0, 1]);
const NLRI = [24, 10, 244, 1]; // 10.244.1.0/24
const WANT = ["10.244.1.0/24"];

const decode = (attrs: number[], ctx: UpdateContext = ebgp4, nlri = NLRI, withdrawn: number[] = []) => decodeUpdate(body(withdrawn, attrs, nlri), ctx);
const reaction = (r: UpdateResult) =>
  r.action === "accept" ? { action: r.action, discarded: r.discarded }
    : r.action === "withdraw" ? { action: r.action, withdrawn: r.withdrawn, code: r.reason.code, subcode: r.reason.subcode }
    : { action: r.action, code: r.error.code, subcode: r.error.subcode, data: [...r.error.data] };
const accepted = (r: UpdateResult) => {
  if (r.action !== "accept") throw new Error(`expected accept, got ${JSON.stringify(reaction(r))}`);
  return r.update;
};
const valid = [...ORIGIN, ...asPath4(65001), ...NEXT_HOP];

describe("UPDATE codec: round trips (RFC 4271 §4.3, RFC 4760, RFC 6793)", () => {
  const full: Update = {
    type: "update",
    withdrawn: ["10.1.0.0/16", "0.0.0.0/0"],
    attrs: {
      origin: 0, asPath: [{ type: 2, asns: [65001, 4_200_000_000] }, { type: 1, asns: [7, 8] }], nextHop: "192.0.2.1", med: 20,
      atomicAggregate: true, aggregator: { asn: 65001, address: "192.0.2.9" }, communities: [0xfde80001], originatorId: 0x0a000001,
      clusterList: [1, 2], unknown: [{ flags: 0xc0 | 0x20, code: 99, value: Uint8Array.of(1, 2, 3) }],
    },
    nlri: ["10.244.1.0/24", "10.244.2.128/25", "192.0.2.7/32"],
  };

  it("a 4-octet session round-trips every attribute Twill knows, and unknown transitive ones", () => {
    const r = decodeMessage(encodeUpdate(full, true));
    expect(r.ok === true && r.message.type === "update").toBe(true);
    if (r.ok !== true || r.message.type !== "update") return;
    expect(accepted(decodeUpdate(r.message.body, { ...ebgp4, external: true }))).toEqual(full);
  });

  it("a 2-octet session carries 4-octet ASes as AS_TRANS plus AS4_PATH/AS4_AGGREGATOR and rebuilds them (RFC 6793 §4.2)", () => {
    const u: Update = { ...full, attrs: { ...full.attrs, aggregator: { asn: 4_200_000_001, address: "192.0.2.9" } } };
    const bytes = encodeUpdate(u, false);
    const d = decodeMessage(bytes);
    if (d.ok !== true || d.message.type !== "update") throw new Error("not an update");
    // The AS_PATH on the wire holds 23456 where the 4-octet AS was.
    expect(Buffer.from(bytes).includes(Buffer.from([2, 2, ...be16(65001), ...be16(23456)]))).toBe(true);
    expect(accepted(decodeUpdate(d.message.body, ebgp2))).toEqual(u);
  });

  it("IPv6 routes travel in MP_REACH_NLRI with a global and link-local next hop, withdrawals in MP_UNREACH_NLRI", () => {
    const [ann] = encodeAnnouncements({ origin: 0, asPath: [{ type: 2, asns: [65001] }] }, ["fd00:10:244:1::/64"], ["fd00::1", "fe80::1"], true);
    const d = decodeMessage(ann!);
    if (d.ok !== true || d.message.type !== "update") throw new Error("not an update");
    const u = accepted(decodeUpdate(d.message.body, ebgp4));
    expect(u.nlri).toEqual([]);
    expect(u.attrs.mpReach).toEqual({ afi: 2, safi: 1, nextHops: ["fd00::1", "fe80::1"], nlri: ["fd00:10:244:1::/64"] });
    const [wd] = encodeWithdrawals(["fd00:10:244:1::/64"], true);
    const w = decodeMessage(wd!);
    if (w.ok !== true || w.message.type !== "update") throw new Error("not an update");
    expect(accepted(decodeUpdate(w.message.body, ebgp4)).attrs.mpUnreach).toEqual({ afi: 2, safi: 1, withdrawn: ["fd00:10:244:1::/64"] });
  });

  it("many prefixes are split into UPDATEs of at most 4096 octets that together carry all of them", () => {
    const prefixes = Array.from({ length: 3000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const msgs = encodeAnnouncements({ origin: 0, asPath: [], nextHop: "10.0.0.1" }, prefixes, undefined, true);
    expect(msgs.length).toBeGreaterThan(1);
    const got: string[] = [];
    for (const m of msgs) {
      expect(m.length).toBeLessThanOrEqual(4096);
      const d = decodeMessage(m);
      if (d.ok !== true || d.message.type !== "update") throw new Error("not an update");
      got.push(...accepted(decodeUpdate(d.message.body, ibgp4)).nlri);
    }
    expect(got).toEqual(prefixes);
  });

  it("bits past the prefix length are ignored (RFC 4271 §4.3)", () => {
    expect(accepted(decode(valid, ebgp4, [20, 10, 244, 0xff])).nlri).toEqual(["10.244.240.0/20"]);
  });
});

describe("UPDATE codec: RFC 4271 §6.3 / RFC 7606 reactions", () => {
  it("Withdrawn Routes Length or Total Attribute Length past the message: session reset, Malformed Attribute List", () => {
    expect(reaction(decodeUpdate(Uint8Array.from([0, 9, 0, 0]), ebgp4))).toEqual({ action: "reset", code: 3, subcode: 1, data: [] });
    expect(reaction(decodeUpdate(Uint8Array.from([0, 0, 0, 9, 0x40, 1, 1, 0]), ebgp4))).toEqual({ action: "reset", code: 3, subcode: 1, data: [] });
  });

  it("unparseable NLRI or withdrawn routes: session reset, Invalid Network Field (RFC 7606 §5.3)", () => {
    expect(reaction(decode(valid, ebgp4, [33, 10, 0, 0, 0, 0]))).toEqual({ action: "reset", code: 3, subcode: 10, data: [] });
    expect(reaction(decode(valid, ebgp4, [24, 10, 0]))).toEqual({ action: "reset", code: 3, subcode: 10, data: [] });
    expect(reaction(decode(valid, ebgp4, NLRI, [16, 10]))).toEqual({ action: "reset", code: 3, subcode: 10, data: [] });
  });

  it("an attribute overrunning the Total Attribute Length, or a truncated attribute header: treat-as-withdraw (RFC 7606 §4)", () => {
    expect(reaction(decode([...valid, 0x40, 1, 5, 0]))).toMatchObject({ action: "withdraw", withdrawn: WANT, subcode: 5 });
    expect(reaction(decode([...valid, 0x40, 1]))).toMatchObject({ action: "withdraw", withdrawn: WANT });
    // Extended-length header needs four octets.
    expect(reaction(decode([...valid, 0x50, 1, 0]))).toMatchObject({ action: "withdraw", withdrawn: WANT });
  });

  it("Optional/Transitive flag bits in conflict: treat-as-withdraw, the reason is Attribute Flags Error (RFC 7606 §3 (c))", () => {
    expect(reaction(decode([0xc0, 1, 1, 0, ...asPath4(65001), ...NEXT_HOP]))).toEqual({ action: "withdraw", withdrawn: WANT, code: 3, subcode: 4 });
    // MED sent as well-known.
    expect(reaction(decode([...valid, ...attr(0x40, 4, be32(5))]))).toMatchObject({ action: "withdraw", subcode: 4 });
  });

  it("withdrawn routes plus all NLRI are what treat-as-withdraw removes", () => {
    const r = decode([...attr(0x40, 1, [7]), ...asPath4(65001), ...NEXT_HOP], ebgp4, [...NLRI, 32, 10, 0, 0, 1], [8, 11]);
    expect(reaction(r)).toEqual({ action: "withdraw", withdrawn: ["11.0.0.0/8", "10.244.1.0/24", "10.0.0.1/32"], code: 3, subcode: 6 });
  });

  it("ORIGIN of wrong length or undefined value: treat-as-withdraw (RFC 7606 §7.1)", () => {
    expect(reaction(decode([...attr(0x40, 1, [0, 0]), ...asPath4(65001), ...NEXT_HOP]))).toMatchObject({ action: "withdraw", subcode: 5 });
    expect(reaction(decode([...attr(0x40, 1, [3]), ...asPath4(65001), ...NEXT_HOP]))).toMatchObject({ action: "withdraw", subcode: 6 });
  });

  it("malformed AS_PATH (overrun, lone octet, zero-length segment, unknown type, AS 0): treat-as-withdraw (RFC 7606 §7.2, RFC 7607)", () => {
    for (const p of [[2, 3, ...be32(65001)], [2, 1, ...be32(65001), 2], [2, 0], [5, 1, ...be32(65001)], [2, 1, ...be32(0)]]) {
      expect(reaction(decode([...ORIGIN, ...attr(0x40, 2, p), ...NEXT_HOP]))).toMatchObject({ action: "withdraw", withdrawn: WANT, subcode: 11 });
    }
  });

  it("from an external peer, a leftmost AS other than the peer's: treat-as-withdraw; iBGP paths are not checked", () => {
    expect(reaction(decode([...ORIGIN, ...asPath4(65002), ...NEXT_HOP]))).toMatchObject({ action: "withdraw", subcode: 11 });
    const empty = attr(0x40, 2, []);
    expect(reaction(decode([...ORIGIN, ...empty, ...NEXT_HOP]))).toMatchObject({ action: "withdraw", subcode: 11 });
    expect(accepted(decode([...ORIGIN, ...empty, ...NEXT_HOP], ibgp4)).attrs.asPath).toEqual([]);
  });

  it("NEXT_HOP of wrong length: treat-as-withdraw; a non-unicast next hop makes the route ignored without a NOTIFICATION", () => {
    expect(reaction(decode([...ORIGIN, ...asPath4(65001), ...attr(0x40, 3, [10, 0, 0, 1, 0])]))).toMatchObject({ action: "withdraw", subcode: 5 });
    for (const nh of [[0, 0, 0, 0], [224, 0, 0, 5], [255, 255, 255, 255]]) {
      expect(reaction(decode([...ORIGIN, ...asPath4(65001), ...attr(0x40, 3, nh)]))).toMatchObject({ action: "withdraw", subcode: 8 });
    }
  });

  it("missing ORIGIN, AS_PATH or NEXT_HOP with NLRI: treat-as-withdraw (RFC 7606 §3 (d)); a pure withdrawal needs none", () => {
    expect(reaction(decode([...asPath4(65001), ...NEXT_HOP]))).toMatchObject({ action: "withdraw", subcode: 3 });
    expect(reaction(decode([...ORIGIN, ...NEXT_HOP]))).toMatchObject({ action: "withdraw", subcode: 3 });
    expect(reaction(decode([...ORIGIN, ...asPath4(65001)]))).toMatchObject({ action: "withdraw", subcode: 3 });
    expect(accepted(decode([], ebgp4, [], NLRI)).withdrawn).toEqual(WANT);
  });

  it("MED of wrong length: treat-as-withdraw (RFC 7606 §7.4)", () => {
    expect(reaction(decode([...valid, ...attr(0x80, 4, [0, 0, 1])]))).toMatchObject({ action: "withdraw", subcode: 5 });
  });

  it("LOCAL_PREF from an external peer is discarded whatever it holds; from an internal one a wrong length is treat-as-withdraw (§7.5)", () => {
    const r = decode([...valid, ...attr(0x40, 5, [1])]);
    expect(reaction(r)).toEqual({ action: "accept", discarded: [5] });
    expect(accepted(r).attrs.localPref).toBeUndefined();
    expect(accepted(decode([...valid, ...attr(0x40, 5, be32(200))], ibgp4)).attrs.localPref).toBe(200);
    expect(reaction(decode([...valid, ...attr(0x40, 5, [1])], ibgp4))).toMatchObject({ action: "withdraw", subcode: 5 });
  });

  it("ATOMIC_AGGREGATE with a value and AGGREGATOR of wrong length or AS 0: attribute discard (§7.6, §7.7, RFC 7607)", () => {
    expect(reaction(decode([...valid, ...attr(0x40, 6, [1])]))).toEqual({ action: "accept", discarded: [6] });
    expect(reaction(decode([...valid, ...attr(0xc0, 7, [1, 1, 10, 0, 0, 1])]))).toEqual({ action: "accept", discarded: [7] });
    expect(reaction(decode([...valid, ...attr(0xc0, 7, [0, 0, 0, 0, 10, 0, 0, 1, 1])]))).toEqual({ action: "accept", discarded: [7] });
    expect(reaction(decode([...valid, ...attr(0xc0, 7, [...be32(0), 10, 0, 0, 1])]))).toEqual({ action: "accept", discarded: [7] });
  });

  it("ORIGINATOR_ID not 4 octets, CLUSTER_LIST not a non-zero multiple of 4, COMMUNITIES likewise: treat-as-withdraw", () => {
    expect(reaction(decode([...valid, ...attr(0x80, 9, [1, 2, 3])], ibgp4))).toMatchObject({ action: "withdraw", subcode: 5 });
    expect(reaction(decode([...valid, ...attr(0x80, 10, [1, 2, 3, 4, 5, 6])], ibgp4))).toMatchObject({ action: "withdraw", subcode: 5 });
    expect(reaction(decode([...valid, ...attr(0x80, 10, [])], ibgp4))).toMatchObject({ action: "withdraw", subcode: 5 });
    expect(reaction(decode([...valid, ...attr(0xc0, 8, [1, 2])]))).toMatchObject({ action: "withdraw", subcode: 9 });
  });

  it("MP_REACH_NLRI whose next hop length hides the NLRI, or with bad NLRI: session reset, Optional Attribute Error, data = the attribute (RFC 7606 §7.11)", () => {
    const bad = attr(0x80, 14, [0, 2, 1, 5, 1, 2, 3, 4, 5, 0, 64, 0xfd, 0, 0, 0, 0, 0, 0, 0]);
    expect(reaction(decode([...ORIGIN, ...asPath4(65001), ...bad], ebgp4, []))).toEqual({ action: "reset", code: 3, subcode: 9, data: bad });
    const badNlri = attr(0x80, 14, [0, 1, 1, 4, 10, 0, 0, 1, 0, 40, 1, 2, 3, 4, 5]);
    expect(reaction(decode([...ORIGIN, ...asPath4(65001), ...badNlri], ebgp4, []))).toMatchObject({ action: "reset", subcode: 9 });
    const badUnreach = attr(0x80, 15, [0, 2, 1, 129]);
    expect(reaction(decode(badUnreach, ebgp4, []))).toMatchObject({ action: "reset", subcode: 9 });
  });

  it("MP_REACH_NLRI or MP_UNREACH_NLRI twice: session reset, Malformed Attribute List; other repeats keep the first (RFC 7606 §3 (g))", () => {
    const unreach = attr(0x80, 15, [0, 1, 1, 8, 10]);
    expect(reaction(decode([...unreach, ...unreach], ebgp4, []))).toEqual({ action: "reset", code: 3, subcode: 1, data: [] });
    const r = decode([...valid, ...attr(0x40, 1, [2])]);
    expect(reaction(r)).toEqual({ action: "accept", discarded: [1] });
    expect(accepted(r).attrs.origin).toBe(0);
  });

  it("an unrecognized well-known attribute: session reset, data = the attribute (RFC 4271 §6.3)", () => {
    const unknown = attr(0x40, 99, [1, 2]);
    expect(reaction(decode([...valid, ...unknown]))).toEqual({ action: "reset", code: 3, subcode: 2, data: unknown });
  });

  it("unknown optional transitive attributes are kept with their flags; optional non-transitive ones are dropped", () => {
    const u = accepted(decode([...valid, ...attr(0xc0, 99, [1]), ...attr(0x80, 98, [2])]));
    expect(u.attrs.unknown).toEqual([{ flags: 0xc0, code: 99, value: Uint8Array.of(1) }]);
  });

  it("several problems: the strongest reaction wins (RFC 7606 §3 (h))", () => {
    // discard (ATOMIC_AGGREGATE) + withdraw (MED).
    expect(reaction(decode([...valid, ...attr(0x40, 6, [1]), ...attr(0x80, 4, [1])]))).toMatchObject({ action: "withdraw" });
    // withdraw (ORIGIN) + reset (unknown well-known).
    expect(reaction(decode([...attr(0x40, 1, [9]), ...asPath4(65001), ...NEXT_HOP, ...attr(0x40, 99, [])]))).toMatchObject({ action: "reset", subcode: 2 });
  });

  it("AS4_PATH: merged behind 2-octet speakers, ignored when longer than AS_PATH, when the AGGREGATOR is a 2-octet AS, or on 4-octet sessions", () => {
    const as4 = (...asns: number[]) => attr(0xc0, 17, [2, asns.length, ...asns.flatMap(be32)]);
    const path = (r: UpdateResult) => accepted(r).attrs.asPath;
    // 65001 (2-octet, added after the path left 4-octet land) + AS4_PATH [4200000000, 4200000001].
    expect(path(decode([...ORIGIN, ...asPath2(65001, 23456, 23456), ...NEXT_HOP, ...as4(4_200_000_000, 4_200_000_001)], ebgp2))).toEqual([{ type: 2, asns: [65001, 4_200_000_000, 4_200_000_001] }]);
    expect(path(decode([...ORIGIN, ...asPath2(65001), ...NEXT_HOP, ...as4(1, 2)], ebgp2))).toEqual([{ type: 2, asns: [65001] }]);
    const agg = attr(0xc0, 7, [...be16(65009), 10, 0, 0, 9]);
    expect(path(decode([...ORIGIN, ...asPath2(65001, 23456), ...NEXT_HOP, ...agg, ...as4(4_200_000_000)], ebgp2))).toEqual([{ type: 2, asns: [65001, 23456] }]);
    const r = decode([...valid, ...as4(4_200_000_000)]);
    expect(reaction(r)).toEqual({ action: "accept", discarded: [17] });
  });
});

describe("UPDATE codec under fuzzing", () => {
  const ctxs = [ibgp4, ebgp4, ebgp2];
  const known = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 17, 18, 99];
  const anyAttr = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.constantFrom(...known), fc.uint8Array({ maxLength: 24 })).map(([f, c, v]) => attr(f & 0xe0, c, [...v]));

  const check = (b: Uint8Array, ctx: UpdateContext) => {
    const r = decodeUpdate(b, ctx);
    expect(["accept", "withdraw", "reset"]).toContain(r.action);
    if (r.action === "accept") {
      // What is accepted re-encodes to something that decodes the same.
      const again = decodeMessage(encodeUpdate(r.update, ctx.fourOctetAs));
      if (again.ok !== true || again.message.type !== "update") throw new Error("re-encoding failed");
      const r2 = decodeUpdate(again.message.body, ctx);
      expect(r2.action).toBe("accept");
      if (r2.action === "accept") expect(r2.update).toEqual(r.update);
    }
    if (r.action === "reset") expect(r.error.code).toBe(3);
  };

  it("random attribute lists never throw, and accepted UPDATEs re-encode stably", () => {
    fc.assert(
      fc.property(fc.array(anyAttr, { maxLength: 8 }), fc.uint8Array({ maxLength: 12 }), fc.constantFrom(...ctxs), (attrs, nlri, ctx) => {
        check(body([], attrs.flat(), [...nlri]), ctx);
      }),
      { numRuns: 3000 },
    );
  });

  it("mutations of a valid UPDATE never throw", () => {
    const base = body([8, 11], [...valid, ...attr(0x80, 4, be32(5)), ...attr(0xc0, 7, [...be32(65001), 10, 0, 0, 9]), ...attr(0x80, 14, [0, 2, 1, 16, ...new Array(15).fill(0), 1, 0, 48, 0xfd, 0, 0, 0, 0, 1])], NLRI);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 8 }), fc.constantFrom(...ctxs), (edits, cut, ctx) => {
        const b = base.slice(0, base.length - cut);
        for (const [i, v] of edits) if (i < b.length) b[i] = v;
        check(b, ctx);
      }),
      { numRuns: 3000 },
    );
  });
});
