import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TwillError } from "../../lib/errors.ts";
import {
  AF_BRIDGE, AF_UNSPEC, deleteFdb, deleteNeighbour, dumpFdb, dumpNeighbours, encodeFdb, encodeNeigh, MAX_NEIGH_MESSAGE, NTF_SELF, parseNeighbour, replaceFdb, replaceNeighbour,
} from "../../lib/netlink/neigh.ts";
import { NLM_F, NUD_PERMANENT, parseMessages, RTM, type MessageHeader } from "../../lib/netlink/rtnl.ts";

const header = (b: Uint8Array) => parseMessages(b)[0]!;
const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint16(at, true);
const s32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getInt32(at, true);

/** The same bytes as a dump reply would carry them: the kernel answers with RTM_NEWNEIGH. */
function asReply(b: Uint8Array): { buf: Uint8Array; m: MessageHeader } {
  const buf = b.slice();
  new DataView(buf.buffer).setUint16(4, RTM.NEWNEIGH, true);
  return { buf, m: header(buf) };
}

/** [type, payload length] of each rtattr after the 12-byte ndmsg. */
function attrs(b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  for (let off = 28; off + 4 <= b.length; ) {
    const len = u16(b, off);
    out.push([u16(b, off + 2), len - 4]);
    off += (len + 3) & ~3;
  }
  return out;
}

describe("rtnetlink neighbour messages", () => {
  it("a neighbour replace is `ip neigh replace … nud permanent`: creates or overwrites, no ACK, and reads back", () => {
    const m = replaceNeighbour(5, { index: 9, ip: "10.244.3.0", mac: "0a:1b:2c:3d:4e:5f" });
    expect(header(m)).toMatchObject({ type: RTM.NEWNEIGH, flags: NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE, seq: 5, length: m.length });
    expect(m[16]).toBe(2); // AF_INET
    expect(s32(m, 20)).toBe(9);
    expect(u16(m, 24)).toBe(NUD_PERMANENT);
    expect(attrs(m)).toEqual([[1, 4], [2, 6]]); // NDA_DST, NDA_LLADDR
    const { buf, m: h } = asReply(m);
    expect(parseNeighbour(buf, h)).toEqual({ family: 2, index: 9, state: NUD_PERMANENT, flags: 0, dst: "10.244.3.0", mac: "0a:1b:2c:3d:4e:5f" });
  });

  it("an IPv6 neighbour carries its family and reads back in ip's form", () => {
    const m = replaceNeighbour(6, { index: 3, ip: "fd00:0:0:1::", mac: "02:00:00:00:00:01" });
    expect(m[16]).toBe(10);
    const { buf, m: h } = asReply(m);
    expect(parseNeighbour(buf, h)).toMatchObject({ family: 10, dst: "fd00:0:0:1::", mac: "02:00:00:00:00:01" });
  });

  it("a neighbour delete names device and address only, asks for no ACK, and is no dump answer", () => {
    const m = deleteNeighbour(7, { index: 9, ip: "10.244.3.0" });
    expect(header(m)).toMatchObject({ type: RTM.DELNEIGH, flags: NLM_F.REQUEST });
    expect(attrs(m)).toEqual([[1, 4]]);
    expect(parseNeighbour(m, header(m))).toBeUndefined();
  });

  it("an FDB write is `bridge fdb replace MAC dev DEV dst IP self permanent`", () => {
    const m = replaceFdb(8, { index: 4, mac: "0a:00:00:00:00:02", dst: "192.0.2.7" });
    expect(header(m)).toMatchObject({ type: RTM.NEWNEIGH, flags: NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE });
    expect([m[16], s32(m, 20), u16(m, 24), m[26]]).toEqual([AF_BRIDGE, 4, NUD_PERMANENT, NTF_SELF]);
    expect(attrs(m)).toEqual([[2, 6], [1, 4]]);
    const { buf, m: h } = asReply(m);
    expect(parseNeighbour(buf, h)).toEqual({ family: AF_BRIDGE, index: 4, state: NUD_PERMANENT, flags: NTF_SELF, dst: "192.0.2.7", mac: "0a:00:00:00:00:02" });
  });

  it("an FDB delete names the same MAC and remote, so only that remote goes", () => {
    const m = deleteFdb(9, { index: 4, mac: "0a:00:00:00:00:02", dst: "2001:db8::7" });
    expect(header(m)).toMatchObject({ type: RTM.DELNEIGH, flags: NLM_F.REQUEST });
    expect([m[16], m[26]]).toEqual([AF_BRIDGE, NTF_SELF]);
    expect(attrs(m)).toEqual([[2, 6], [1, 16]]);
    expect(parseNeighbour(asReply(m).buf, asReply(m).m)?.dst).toBe("2001:db8::7");
  });

  it("dumps are filtered to one device: NDA_IFINDEX for neighbours, the legacy ifinfomsg index for the FDB", () => {
    const n = dumpNeighbours(10, 42);
    expect(header(n)).toMatchObject({ type: RTM.GETNEIGH, flags: NLM_F.REQUEST | NLM_F.DUMP, length: 16 + 12 + 8 });
    expect([n[16], s32(n, 20)]).toEqual([AF_UNSPEC, 0]);
    expect([u16(n, 28), u16(n, 30), s32(n, 32)]).toEqual([8, 8, 42]);
    const f = dumpFdb(11, 42);
    expect(header(f)).toMatchObject({ type: RTM.GETNEIGH, flags: NLM_F.REQUEST | NLM_F.DUMP, length: 16 + 16 });
    expect([f[16], s32(f, 20)]).toEqual([AF_BRIDGE, 42]);
  });

  it("messages encoded back to back in one buffer split again, each within its room", () => {
    const buf = new Uint8Array(MAX_NEIGH_MESSAGE * 4);
    let off = 0;
    for (const [i, ip] of ["10.0.0.1", "fd00::1"].entries()) {
      const before = off;
      off = encodeNeigh(buf, off, "replace", 100 + i, { index: 1, ip, mac: "02:00:00:00:00:0a" });
      expect(off - before).toBeLessThanOrEqual(MAX_NEIGH_MESSAGE);
      off = encodeFdb(buf, off, "replace", 200 + i, { index: 1, mac: "02:00:00:00:00:0a", dst: ip });
    }
    expect(parseMessages(buf, off).map((m) => m.seq)).toEqual([100, 200, 101, 201]);
  });

  it("a MAC that is not one is refused rather than written as zeros", () => {
    expect(() => replaceNeighbour(1, { index: 1, ip: "10.0.0.1", mac: "02:00:00:00:00" })).toThrow(/is not a MAC address/);
    expect(() => replaceFdb(1, { index: 1, mac: "zz:00:00:00:00:01", dst: "10.0.0.1" })).toThrow(/is not a MAC address/);
  });
});

describe("malformed neighbour replies", () => {
  const valid = () => asReply(replaceFdb(1, { index: 4, mac: "0a:00:00:00:00:02", dst: "192.0.2.7" }));

  it("a message shorter than ndmsg is an error that says so", () => {
    const buf = new Uint8Array(24);
    new DataView(buf.buffer).setUint16(4, RTM.NEWNEIGH, true);
    expect(() => parseNeighbour(buf, { type: RTM.NEWNEIGH, flags: 0, seq: 1, offset: 0, length: 24 })).toThrow(/malformed: a message of 24 bytes is shorter than its header/);
  });

  it("an attribute that runs past its message, or an address of an odd size, is an error", () => {
    const { buf, m } = valid();
    const long = buf.slice();
    new DataView(long.buffer).setUint16(28, 200, true);
    expect(() => parseNeighbour(long, m)).toThrow(/malformed: attribute 2 of 200 bytes runs past the end of the 20 bytes that hold it/);
    const odd = buf.slice();
    new DataView(odd.buffer).setUint16(40, 7, true); // NDA_DST of 3 bytes
    expect(() => parseNeighbour(odd, m)).toThrow(/an address of 3 bytes/);
  });

  it("a datagram cut short loses its last message, not the ones before it", () => {
    const a = valid().buf;
    const both = new Uint8Array(a.length * 2);
    both.set(a, 0);
    both.set(a, a.length);
    expect(parseMessages(both, both.length - 5)).toHaveLength(1);
  });

  it("any bytes at all: an entry, undefined or a KERNEL_READ TwillError, never another exception", () => {
    const { buf } = valid();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat({ max: 80 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.nat(), (bytes, cut, noise, at) => {
        const mutated = buf.slice();
        mutated.set(noise.subarray(0, Math.max(0, mutated.length - (at % mutated.length))), at % mutated.length);
        for (const b of [bytes, mutated.subarray(0, cut)]) {
          const m = { type: RTM.NEWNEIGH, flags: 0, seq: 1, offset: 0, length: b.length };
          try {
            parseNeighbour(b, m);
          } catch (err) {
            expect(err).toBeInstanceOf(TwillError);
            expect((err as TwillError).code).toBe("KERNEL_READ");
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
