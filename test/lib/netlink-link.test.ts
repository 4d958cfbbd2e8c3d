import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TwillError } from "../../lib/errors.ts";
import { dumpAddresses, parseAddress, parseLink } from "../../lib/netlink/link.ts";
import { concat, message, newVeth, NLM_F, parseMessages, RTM } from "../../lib/netlink/rtnl.ts";

// Replies built as the kernel builds them (rtnl_fill_ifinfo, vxlan_fill_info,
// inet_fill_ifaddr), so the parsers are checked byte for byte.

function attr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array((4 + payload.length + 3) & ~3);
  new DataView(out.buffer).setUint16(0, 4 + payload.length, true);
  new DataView(out.buffer).setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}
const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
const bytes = (...b: number[]) => Uint8Array.from(b);
const text = (s: string) => new TextEncoder().encode(`${s}\0`);
const NESTED = 0x8000;

function ifinfo(index: number, flags: number): Uint8Array {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setInt32(4, index, true);
  new DataView(b.buffer).setUint32(8, flags, true);
  return b;
}

const vxlanData = attr(2 | NESTED, concat([attr(1, u32(7)), attr(3, u32(2)), attr(4, bytes(10, 97, 0, 1)), attr(7, bytes(0)), attr(15, bytes(0x21, 0x18))]));
const vxlanLink = message(RTM.NEWLINK, 0, 1, concat([
  ifinfo(5, 0x11043),
  attr(3, text("twill.vxlan")),
  attr(4, u32(1450)),
  attr(1, bytes(0x0e, 0xff, 0, 0, 0, 1)),
  attr(18 | NESTED, concat([attr(1, text("vxlan")), vxlanData])),
]));

function address(index: number, family: number, prefix: number, addr: Uint8Array, local?: Uint8Array): Uint8Array {
  const hdr = bytes(family, prefix, 0, 0, 0, 0, 0, 0);
  new DataView(hdr.buffer).setUint32(4, index, true);
  return message(RTM.NEWADDR, NLM_F.MULTI, 2, concat([hdr, attr(1, addr), ...(local ? [attr(2, local)] : [])]));
}

describe("rtnetlink device descriptions", () => {
  it("a VXLAN device reads as `ip -d link show` prints it: VNI, underlay index, local, port, learning", () => {
    expect(parseLink(vxlanLink, parseMessages(vxlanLink)[0]!)).toEqual({
      index: 5,
      name: "twill.vxlan",
      flags: 0x11043,
      mtu: 1450,
      mac: "0e:ff:00:00:00:01",
      kind: "vxlan",
      vxlan: { vni: 7, link: 2, local: "10.97.0.1", port: 8472, learning: false },
      gso: { ipv4: 0, ipv6: 0 },
      gro: { ipv4: 0, ipv6: 0 },
    });
  });

  it("a device of another kind has no VXLAN part, and other messages are not devices", () => {
    const veth = message(RTM.NEWLINK, 0, 1, concat([ifinfo(3, 1), attr(18 | NESTED, concat([attr(1, text("veth")), vxlanData]))]));
    expect(parseLink(veth, parseMessages(veth)[0]!)).toEqual({ index: 3, name: "", flags: 1, mtu: 0, mac: "", kind: "veth", gso: { ipv4: 0, ipv6: 0 }, gro: { ipv4: 0, ipv6: 0 } });
    const a = address(5, 2, 32, bytes(10, 199, 0, 0));
    expect(parseLink(a, parseMessages(a)[0]!)).toBeUndefined();
  });

  it("BIG TCP: the GSO and GRO limits of both families, as a veth request with sizes carries them", () => {
    const m = newVeth(3, { name: "twl1", mac: "ee:00:00:00:00:01", mtu: 1500, peerName: "eth0", peerMac: "0a:00:00:00:00:02", peerNetnsFd: 9, gso: { ipv4: 196608, ipv6: 262144 } });
    expect(parseLink(m, parseMessages(m)[0]!)).toMatchObject({ gso: { ipv4: 196608, ipv6: 262144 }, gro: { ipv4: 196608, ipv6: 262144 } });
    const short = message(RTM.NEWLINK, 0, 1, concat([ifinfo(3, 1), attr(63, bytes(1, 0))]));
    expect(() => parseLink(short, parseMessages(short)[0]!)).toThrow(/a size limit of 2 bytes, 4 expected/);
  });

  it("addresses: IFA_LOCAL first, else IFA_ADDRESS; the dump asks for one family", () => {
    const p2p = address(5, 2, 32, bytes(10, 0, 0, 2), bytes(10, 0, 0, 1));
    expect(parseAddress(p2p, parseMessages(p2p)[0]!)).toEqual({ family: 2, index: 5, prefixLength: 32, local: "10.0.0.1" });
    const v6 = address(6, 10, 64, bytes(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1));
    expect(parseAddress(v6, parseMessages(v6)[0]!)).toEqual({ family: 10, index: 6, prefixLength: 64, local: "fe80::1" });
    const d = dumpAddresses(9, 2);
    expect(parseMessages(d)[0]).toMatchObject({ type: RTM.GETADDR, flags: NLM_F.REQUEST | NLM_F.DUMP, seq: 9 });
    expect(d[16]).toBe(2);
  });

  it("a nested attribute that runs past its container, or a short VNI, is a KERNEL_READ error that says so", () => {
    const cut = vxlanLink.slice();
    // IFLA_INFO_DATA's first child (IFLA_VXLAN_ID) claims 200 bytes.
    const at = cut.length - vxlanData.length + 4;
    new DataView(cut.buffer).setUint16(at, 200, true);
    expect(() => parseLink(cut, parseMessages(cut)[0]!)).toThrow(/device description from the kernel is malformed: attribute 1 of 200 bytes runs past the end/);
    const shortVni = message(RTM.NEWLINK, 0, 1, concat([ifinfo(5, 0), attr(18 | NESTED, concat([attr(1, text("vxlan")), attr(2 | NESTED, attr(1, bytes(7)))]))]));
    expect(() => parseLink(shortVni, parseMessages(shortVni)[0]!)).toThrow(/a VNI of 1 bytes, 4 expected/);
    const badAddr = address(5, 2, 32, bytes(10, 0, 0));
    expect(() => parseAddress(badAddr, parseMessages(badAddr)[0]!)).toThrow(/an address of 3 bytes in family 2/);
  });

  it("any bytes at all: a device, an address, undefined or a KERNEL_READ TwillError, never another exception", () => {
    fc.assert(
      fc.property(fc.constantFrom(vxlanLink, address(5, 2, 32, bytes(10, 0, 0, 2), bytes(10, 0, 0, 1))), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.nat({ max: 120 }), (base, at, noise, cut) => {
        const b = base.slice();
        b.set(noise.subarray(0, Math.max(0, b.length - (at % b.length))), at % b.length);
        for (const bb of [b, b.subarray(0, Math.min(cut, b.length))]) {
          const m = { type: base === vxlanLink ? RTM.NEWLINK : RTM.NEWADDR, flags: 0, seq: 1, offset: 0, length: bb.length };
          try {
            parseLink(bb, m);
            parseAddress(bb, m);
          } catch (err) {
            expect(err).toBeInstanceOf(TwillError);
            expect((err as TwillError).code).toBe("KERNEL_READ");
          }
        }
      }),
      { numRuns: 3000 },
    );
  });
});
