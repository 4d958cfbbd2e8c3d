import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TwillError } from "../../lib/errors.ts";
import { deleteRoute, dumpRoutes, parseRoute, replaceRoute, RTNH_F_ONLINK } from "../../lib/netlink/routes.ts";
import { ackBarrier, errorOf, ipBytes, NLM_F, NLMSG_ERROR, NLMSG_NOOP, parseMessages, RTM } from "../../lib/netlink/rtnl.ts";

const header = (b: Uint8Array) => parseMessages(b)[0]!;
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));

describe("rtnetlink route messages", () => {
  it("a replace creates or overwrites, asks for no ACK, and carries destination, device and next hop", () => {
    const m = replaceRoute(9, { dst: "10.11.12.0/24", gateway: "10.0.0.2", oif: 7, protocol: 211 });
    expect(header(m)).toMatchObject({ type: RTM.NEWROUTE, flags: NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE, seq: 9, length: m.length });
    // family, dst_len, src_len, tos, table main, protocol, scope universe, type unicast
    expect(Array.from(m.subarray(16, 24))).toEqual([2, 24, 0, 0, 254, 211, 0, 1]);
    expect(parseRoute(m, header(m))).toEqual({ dst: "10.11.12.0/24", gateway: "10.0.0.2", oif: 7, table: 254, protocol: 211, blackhole: false, onlink: false });
  });

  it("onlink sets RTNH_F_ONLINK; a blackhole has its type and no device", () => {
    const on = replaceRoute(1, { dst: "10.1.0.0/16", gateway: "192.0.2.1", oif: 3, protocol: 211, onlink: true });
    expect(new DataView(on.buffer).getUint32(24, true)).toBe(RTNH_F_ONLINK);
    expect(parseRoute(on, header(on))?.onlink).toBe(true);
    const bh = replaceRoute(2, { dst: "10.244.1.0/24", protocol: 211, blackhole: true });
    expect(bh[23]).toBe(6);
    expect(parseRoute(bh, header(bh))).toMatchObject({ dst: "10.244.1.0/24", gateway: "", oif: 0, blackhole: true });
  });

  it("a delete matches any scope and names protocol and type, so only Twill's route goes", () => {
    const m = deleteRoute(4, { dst: "10.244.1.0/24", protocol: 211, blackhole: true });
    expect(header(m)).toMatchObject({ type: RTM.DELROUTE, flags: NLM_F.REQUEST });
    expect(Array.from(m.subarray(16, 24))).toEqual([2, 24, 0, 0, 254, 211, 255, 6]);
  });

  it("IPv6 routes read back in the canonical form ip prints", () => {
    const m = replaceRoute(5, { dst: "fd00:10:244:1::/64", gateway: "fe80::1", oif: 2, protocol: 211 });
    expect(parseRoute(m, header(m))).toMatchObject({ dst: "fd00:10:244:1::/64", gateway: "fe80::1" });
    const longest = replaceRoute(6, { dst: "2001:db8:0:0:1:0:0:0/128", protocol: 211, blackhole: true });
    expect(parseRoute(longest, header(longest))?.dst).toBe("2001:db8:0:0:1::/128");
    const single = replaceRoute(7, { dst: "2001:db8:0:1:1:1:1:1/128", protocol: 211, blackhole: true });
    expect(parseRoute(single, header(single))?.dst).toBe("2001:db8:0:1:1:1:1:1/128");
  });

  it("a dump answer of another protocol is skipped unread", () => {
    const m = replaceRoute(8, { dst: "10.0.0.0/8", gateway: "10.0.0.1", oif: 1, protocol: 3 });
    expect(parseRoute(m, header(m), 211)).toBeUndefined();
    expect(header(dumpRoutes(3, 10))).toMatchObject({ type: RTM.GETROUTE, flags: NLM_F.REQUEST | NLM_F.DUMP });
  });

  it("a Twill route that does not hold together is a KERNEL_READ error, not a garbled address; another protocol's is never read", () => {
    const good = replaceRoute(8, { dst: "10.0.0.0/8", gateway: "10.0.0.1", oif: 1, protocol: 211 });
    const cut = good.slice(0, good.length - 2); // the last attribute (OIF) loses two bytes
    new DataView(cut.buffer).setUint32(0, cut.length, true);
    expect(() => parseRoute(cut, header(cut), 211)).toThrow(expect.objectContaining({ code: "KERNEL_READ", message: expect.stringContaining("runs past the end") }));
    const shortAddress = good.slice();
    // RTA_DST (first attribute, at 28) claims 3 address bytes instead of 4.
    new DataView(shortAddress.buffer).setUint16(28, 7, true);
    expect(() => parseRoute(shortAddress, header(shortAddress), 211)).toThrow(expect.objectContaining({ code: "KERNEL_READ", message: expect.stringContaining("an address of 3 bytes") }));
    const headerOnly = good.slice(0, 24);
    new DataView(headerOnly.buffer).setUint32(0, 24, true);
    expect(() => parseRoute(headerOnly, header(headerOnly), 211)).toThrow(expect.objectContaining({ code: "KERNEL_READ" }));
    const foreign = replaceRoute(9, { dst: "10.0.0.0/8", gateway: "10.0.0.1", oif: 1, protocol: 3 }).slice();
    new DataView(foreign.buffer).setUint16(28, 7, true);
    expect(parseRoute(foreign, header(foreign), 211)).toBeUndefined();
  });

  it("any bytes at all: a route, undefined or a KERNEL_READ TwillError, never another exception", () => {
    const buf = replaceRoute(8, { dst: "fd00:10:244:1::/64", gateway: "fe80::1", oif: 2, protocol: 211 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), fc.nat({ max: 96 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.nat(), (bytes, cut, noise, at) => {
        const mutated = buf.slice();
        mutated.set(noise.subarray(0, Math.max(0, mutated.length - (at % mutated.length))), at % mutated.length);
        for (const b of [bytes, mutated.subarray(0, cut), mutated]) {
          const m = { type: RTM.NEWROUTE, flags: 0, seq: 1, offset: 0, length: b.length };
          try {
            parseRoute(b, m);
          } catch (err) {
            expect(err).toBeInstanceOf(TwillError);
            expect((err as TwillError).code).toBe("KERNEL_READ");
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("a datagram of several replies splits into messages; errors carry the failed request's sequence number", () => {
    const error = (seq: number, errno: number) => {
      const b = new Uint8Array(36);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, 36, true);
      dv.setUint16(4, NLMSG_ERROR, true);
      dv.setUint32(8, seq, true);
      dv.setInt32(16, -errno, true);
      return b;
    };
    const buf = concat(error(11, 101), error(12, 0));
    const msgs = parseMessages(buf);
    expect(msgs.map((m) => [m.seq, errorOf(buf, m)])).toEqual([[11, 101], [12, 0]]);
    expect(header(ackBarrier(13))).toMatchObject({ type: NLMSG_NOOP, flags: NLM_F.REQUEST | NLM_F.ACK, seq: 13 });
  });

  it("addresses that are not IP addresses are refused, not encoded", () => {
    expect(ipBytes("192.0.2.255")).toEqual({ family: 2, bytes: Uint8Array.from([192, 0, 2, 255]) });
    expect(() => replaceRoute(1, { dst: "10.0.0.256/32", protocol: 211, blackhole: true })).toThrow(/not an IP address/);
  });
});
