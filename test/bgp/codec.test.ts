import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeMessage } from "../../daemon/bgp/codec/decode.ts";
import { encodeMessage, myAsField } from "../../daemon/bgp/codec/encode.ts";
import { decodePrefixes, encodePrefixes } from "../../daemon/bgp/codec/prefix.ts";
import { AS_TRANS, peerAs, type Message, type Open } from "../../daemon/bgp/codec/types.ts";

const open: Open = {
  type: "open",
  version: 4,
  myAs: AS_TRANS,
  holdTime: 90,
  bgpId: 0x0a000001,
  capabilities: [
    { code: 1, afi: 1, safi: 1 },
    { code: 1, afi: 2, safi: 1 },
    { code: 2 },
    { code: 64, restarting: true, restartTime: 120, families: [{ afi: 1, safi: 1, forwardingPreserved: true }] },
    { code: 65, asn: 4_200_000_000 },
  ],
};

const header = (length: number, type: number) => Uint8Array.from([...new Array(16).fill(0xff), length >> 8, length & 0xff, type]);
const err = (bytes: Uint8Array) => {
  const d = decodeMessage(bytes);
  if (d.ok !== false) throw new Error(`expected an error, got ${JSON.stringify(d)}`);
  return { code: d.error.code, subcode: d.error.subcode, data: [...d.error.data] };
};
/** An OPEN with the given body fields, framed. */
const openBytes = (body: number[]) => Uint8Array.from([...header(19 + body.length, 1), ...body]);

describe("BGP codec: messages round-trip (RFC 4271 §4, RFC 5492, RFC 6793, RFC 4724, RFC 2918)", () => {
  for (const m of [open, { type: "keepalive" }, { type: "notification", code: 6, subcode: 2, data: Uint8Array.of(1, 2) }, { type: "route-refresh", afi: 1, safi: 1 }] as Message[]) {
    it(`${m.type} decodes to what was encoded`, () => {
      const bytes = encodeMessage(m);
      const d = decodeMessage(bytes);
      expect(d).toEqual({ ok: true, message: m, length: bytes.length });
    });
  }

  it("a 4-octet AS travels as AS_TRANS in My AS and in full in the capability (RFC 6793 §4.1)", () => {
    expect(myAsField(4_200_000_000)).toBe(AS_TRANS);
    expect(myAsField(64512)).toBe(64512);
    expect(peerAs(open)).toBe(4_200_000_000);
  });

  it("a partial message is reported as incomplete, not as an error", () => {
    const bytes = encodeMessage(open);
    for (const n of [0, 10, 19, bytes.length - 1]) expect(decodeMessage(bytes.subarray(0, n))).toEqual({ ok: "incomplete" });
  });
});

describe("BGP codec: the RFC's reactions to malformed messages", () => {
  it("§6.1 marker not all ones: Message Header Error / Connection Not Synchronized", () => {
    const b = encodeMessage({ type: "keepalive" });
    b[3] = 0;
    expect(err(b)).toEqual({ code: 1, subcode: 1, data: [] });
  });

  it("§6.1 length out of range or wrong for the type: Bad Message Length, data = the length field", () => {
    expect(err(header(18, 4))).toEqual({ code: 1, subcode: 2, data: [0, 18] });
    expect(err(header(4097, 2))).toEqual({ code: 1, subcode: 2, data: [0x10, 0x01] });
    expect(err(Uint8Array.from([...header(20, 4), 0]))).toEqual({ code: 1, subcode: 2, data: [0, 20] });
    expect(err(header(28, 1))).toEqual({ code: 1, subcode: 2, data: [0, 28] });
    expect(err(header(20, 3))).toEqual({ code: 1, subcode: 2, data: [0, 20] });
  });

  it("§6.1 unknown type: Bad Message Type, data = the type", () => {
    expect(err(header(19, 9))).toEqual({ code: 1, subcode: 3, data: [9] });
  });

  it("§6.2 version other than 4: Unsupported Version Number, data = 4", () => {
    expect(err(openBytes([3, 0xfc, 0, 0, 90, 10, 0, 0, 1, 0]))).toEqual({ code: 2, subcode: 1, data: [0, 4] });
  });

  it("§6.2 hold time 1 or 2: Unacceptable Hold Time; 0 and 3 are fine", () => {
    for (const h of [1, 2]) expect(err(openBytes([4, 0xfc, 0, 0, h, 10, 0, 0, 1, 0]))).toEqual({ code: 2, subcode: 6, data: [] });
    for (const h of [0, 3]) expect(decodeMessage(openBytes([4, 0xfc, 0, 0, h, 10, 0, 0, 1, 0])).ok).toBe(true);
  });

  it("§6.2 BGP identifier 0: Bad BGP Identifier; AS 0: Bad Peer AS (RFC 7607)", () => {
    expect(err(openBytes([4, 0xfc, 0, 0, 90, 0, 0, 0, 0, 0]))).toEqual({ code: 2, subcode: 3, data: [] });
    expect(err(openBytes([4, 0, 0, 0, 90, 10, 0, 0, 1, 0]))).toEqual({ code: 2, subcode: 2, data: [] });
  });

  it("§6.2 an optional parameter other than capabilities: Unsupported Optional Parameter", () => {
    expect(err(openBytes([4, 0xfc, 0, 0, 90, 10, 0, 0, 1, 4, 1, 2, 0, 0]))).toEqual({ code: 2, subcode: 4, data: [] });
  });

  it("§6.2 malformed parameters or capabilities: OPEN Message Error, Unspecific", () => {
    // Optional Parameters Length disagrees with the message.
    expect(err(openBytes([4, 0xfc, 0, 0, 90, 10, 0, 0, 1, 9, 2, 2, 2, 0]))).toEqual({ code: 2, subcode: 0, data: [] });
    // A 4-octet AS capability with 3 bytes.
    expect(err(openBytes([4, 0xfc, 0, 0, 90, 10, 0, 0, 1, 7, 2, 5, 65, 3, 0, 0, 1]))).toEqual({ code: 2, subcode: 0, data: [] });
  });

  it("unknown capabilities are kept, not refused (RFC 5492 §3)", () => {
    const d = decodeMessage(openBytes([4, 0xfc, 0, 0, 90, 10, 0, 0, 1, 5, 2, 3, 99, 1, 7]));
    expect(d.ok === true && d.message.type === "open" && d.message.capabilities).toEqual([{ code: 99, raw: Uint8Array.of(7) }]);
  });
});

describe("BGP codec under fuzzing", () => {
  it("never throws on random bytes, and what it accepts is stable: decode(encode(m)) = m", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (raw, withHeader) => {
        const bytes = withHeader ? Uint8Array.from([...header(19 + raw.length, (raw[0] ?? 1) % 6), ...raw]) : raw;
        const d = decodeMessage(bytes);
        if (d.ok === true) {
          const again = decodeMessage(encodeMessage(d.message));
          expect(again.ok === true && again.message).toEqual(d.message);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws on mutations of valid messages", () => {
    const valid = encodeMessage(open);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
        const b = valid.slice();
        for (const [i, v] of edits) b[i] = v;
        const d = decodeMessage(b);
        expect(["incomplete", true, false]).toContain(d.ok);
      }),
      { numRuns: 3000 },
    );
  });

  it("random valid OPENs round-trip", () => {
    const cap = fc.oneof(
      fc.record({ code: fc.constant(1), afi: fc.integer({ min: 1, max: 2 }), safi: fc.constant(1) }),
      fc.constant({ code: 2 }),
      fc.record({ code: fc.constant(65), asn: fc.integer({ min: 1, max: 0xffffffff }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 65535 })), fc.integer({ min: 1, max: 0xffffffff }), fc.array(cap, { maxLength: 6 }), (myAs, holdTime, bgpId, capabilities) => {
        const m = { type: "open", version: 4, myAs, holdTime, bgpId, capabilities } as Open;
        const bytes = encodeMessage(m);
        expect(decodeMessage(bytes)).toEqual({ ok: true, message: m, length: bytes.length });
      }),
      { numRuns: 500 },
    );
  });
});

describe("NLRI prefixes", () => {
  it("IPv4 prefixes decode to the CIDR text they encode from, host bits cleared", () => {
    fc.assert(
      fc.property(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)), fc.integer({ min: 0, max: 32 }), (octets, len) => {
        const v = octets.reduce((a, o) => a * 256 + o, 0);
        const net = len === 0 ? 0 : (v & ~((2 ** (32 - len) - 1) >>> 0)) >>> 0;
        const text = `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${len}`;
        const n = (len + 7) >> 3;
        // The host bits go on the wire set: the decoder must clear them.
        expect(decodePrefixes(Uint8Array.from([len, ...octets.slice(0, n)]), 1)).toEqual([text]);
        expect(decodePrefixes(Uint8Array.from(encodePrefixes([text])), 1)).toEqual([text]);
      }),
      { numRuns: 2000 },
    );
  });
});
