import { describe, expect, it } from "vitest";
import { ipBytes, macBytes, newRoute, newVeth, NLM_F, parseReply, replaceNeigh, RTM, setLinkGso } from "../../lib/netlink/rtnl.ts";

const hdr = (b: Uint8Array) => {
  const dv = new DataView(b.buffer, b.byteOffset);
  return { len: dv.getUint32(0, true), type: dv.getUint16(4, true), flags: dv.getUint16(6, true), seq: dv.getUint32(8, true) };
};

/** Walks rtattrs from `off`, returning [type, payload] pairs (netlink(7): 4-byte aligned). */
function attrs(b: Uint8Array, off: number, end = b.length): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  const dv = new DataView(b.buffer, b.byteOffset);
  while (off + 4 <= end) {
    const len = dv.getUint16(off, true);
    out.push([dv.getUint16(off + 2, true) & 0x3fff, b.subarray(off + 4, off + len)]);
    off += (len + 3) & ~3;
  }
  return out;
}

describe("rtnetlink requests", () => {
  it("a veth request names both ends, sets MTU and MAC, and moves the peer by namespace fd", () => {
    const m = newVeth(7, { name: "twl1", mac: "ee:00:00:00:00:01", mtu: 1450, peerName: "eth0", peerMac: "0a:00:00:00:00:02", peerNetnsFd: 9 });
    expect(hdr(m)).toEqual({ len: m.length, type: RTM.NEWLINK, flags: NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL, seq: 7 });
    const top = attrs(m, 32);
    expect(top.map(([t]) => t)).toEqual([3, 4, 1, 18]); // IFNAME, MTU, ADDRESS, LINKINFO
    expect(new TextDecoder().decode(top[0]![1])).toBe("twl1\0");
    const linkinfo = attrs(top[3]![1], 0);
    expect(new TextDecoder().decode(linkinfo[0]![1])).toBe("veth\0");
    const peer = attrs(linkinfo[1]![1], 0)[0]![1]; // VETH_INFO_PEER: ifinfomsg + attrs
    const peerAttrs = attrs(peer, 16);
    expect(peerAttrs.map(([t]) => t)).toEqual([3, 4, 1, 28]);
    expect(new DataView(peerAttrs[3]![1].buffer, peerAttrs[3]![1].byteOffset).getUint32(0, true)).toBe(9);
  });

  it("BIG TCP sizes go on each end: GSO and GRO limits, IPv6's (family-less) before IPv4's", () => {
    const m = newVeth(7, { name: "twl1", mac: "ee:00:00:00:00:01", mtu: 1500, peerName: "eth0", peerMac: "0a:00:00:00:00:02", peerNetnsFd: 9, gso: { ipv4: 196608, ipv6: 196608 }, peerGso: { ipv4: 131072, ipv6: 65536 } });
    const u32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getUint32(0, true);
    const top = attrs(m, 32);
    expect(top.map(([t]) => t)).toEqual([3, 4, 1, 41, 58, 63, 64, 18]);
    expect(top.slice(3, 7).map(([, v]) => u32(v))).toEqual([196608, 196608, 196608, 196608]);
    const peer = attrs(attrs(attrs(top[7]![1], 0)[1]![1], 0)[0]![1], 16);
    expect(peer.map(([t]) => t)).toEqual([3, 4, 1, 28, 41, 58, 63, 64]);
    expect(peer.slice(4).map(([, v]) => u32(v))).toEqual([65536, 65536, 131072, 131072]);
    const set = setLinkGso(8, "eth0", { ipv4: 196608, ipv6: 196608 });
    expect(hdr(set)).toMatchObject({ type: RTM.NEWLINK, flags: NLM_F.REQUEST | NLM_F.ACK });
    expect(attrs(set, 32).map(([t]) => t)).toEqual([3, 41, 58, 63, 64]);
  });

  it("a route carries destination, prefix, output interface, protocol and scope", () => {
    const m = newRoute(1, { dst: "10.1.2.3/32", oif: 5, protocol: 212, scope: 253 });
    expect(Array.from(m.subarray(16, 24))).toEqual([2, 32, 0, 0, 254, 212, 253, 1]);
    const a = attrs(m, 28);
    expect(a.map(([t]) => t)).toEqual([1, 4]);
    expect(Array.from(a[0]![1])).toEqual([10, 1, 2, 3]);
    // A default route has no RTA_DST; a gateway is RTA_GATEWAY.
    const d = newRoute(2, { dst: "::/0", gateway: "fe80::1", oif: 5, protocol: 3, scope: 0 });
    expect(attrs(d, 28).map(([t]) => t)).toEqual([4, 5]);
  });

  it("a permanent neighbour entry replaces whatever was there", () => {
    const m = replaceNeigh(3, 4, "169.254.1.1", "ee:01:02:03:04:05");
    expect(hdr(m).flags).toBe(NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE);
    expect(new DataView(m.buffer).getUint16(16 + 8, true)).toBe(0x80);
    expect(Array.from(attrs(m, 28)[1]![1])).toEqual(Array.from(macBytes("ee:01:02:03:04:05")));
  });

  it("replies: ACK, errno, and a link's index", () => {
    const ack = new Uint8Array(36);
    new DataView(ack.buffer).setUint16(4, 2, true);
    expect(parseReply(ack, 36)).toEqual({ kind: "ack" });
    new DataView(ack.buffer).setInt32(16, -17, true);
    expect(parseReply(ack, 36)).toEqual({ kind: "error", errno: 17 });
    const link = new Uint8Array(32);
    new DataView(link.buffer).setUint16(4, RTM.NEWLINK, true);
    new DataView(link.buffer).setInt32(20, 42, true);
    expect(parseReply(link, 32)).toEqual({ kind: "link", index: 42 });
    expect(parseReply(link, 8)).toEqual({ kind: "error", errno: 71 });
  });

  it("addresses encode in network order", () => {
    expect(ipBytes("fd00::1")).toEqual({ family: 10, bytes: Uint8Array.from([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) });
  });
});
