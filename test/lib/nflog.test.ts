import { describe, expect, it } from "vitest";
import { bindGroup, NFLOG_PACKET_TYPE, parsePackets } from "../../lib/netlink/nflog.ts";

// The nflog codec against messages laid out as the kernel's nfnetlink_log
// writes them (include/uapi/linux/netfilter/nfnetlink_log.h). The real kernel
// path (nft's log group → the daemon's reader) is test/ctl/twillctl.test.ts.

function attr(type: number, body: number[]): number[] {
  const len = 4 + body.length;
  const out = [len & 0xff, len >> 8, type & 0xff, type >> 8, ...body];
  while (out.length % 4) out.push(0);
  return out;
}

function packetMessage(prefix: string, ip: number[]): Uint8Array {
  const payload = [2, 0, 0x0a, 0x9e, ...attr(10, [...Buffer.from(prefix), 0]), ...attr(3, [0, 0, 0, 0, 0x65, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x03, 0xe8]), ...attr(4, [0, 0, 0, 7]), ...attr(9, ip)];
  const len = 16 + payload.length;
  return new Uint8Array([len & 0xff, len >> 8, 0, 0, NFLOG_PACKET_TYPE & 0xff, NFLOG_PACKET_TYPE >> 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...payload]);
}

// IPv4 + TCP header start: 10.244.0.4:40000 -> 10.244.1.3:7070.
const TCP_SYN = [0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 244, 0, 4, 10, 244, 1, 3, 0x9c, 0x40, 0x1b, 0x9e];

describe("nflog codec", () => {
  it("decodes a logged packet: prefix, timestamp, input device, addresses, protocol and ports", () => {
    const [p] = parsePackets(packetMessage("ingress", TCP_SYN));
    expect(p).toEqual({ prefix: "ingress", time: 0x65000000 * 1000 + 1, inIfindex: 7, outIfindex: 0, src: "10.244.0.4", dst: "10.244.1.3", proto: 6, sport: 40000, dport: 7070 });
  });

  it("skips what it cannot decode (IPv6, other messages) and refuses an attribute that runs past its message", () => {
    expect(parsePackets(packetMessage("egress", [0x60, 0, 0, 0]))).toEqual([]);
    const broken = packetMessage("ingress", TCP_SYN);
    broken[20] = 0xff; // the first attribute claims 255 bytes
    expect(() => parsePackets(broken)).toThrow(/malformed nflog message/);
  });

  it("binds a group with its number big-endian in res_id, copy mode packet, one packet per message", () => {
    const [bind, mode] = bindGroup(1, 2718, 64);
    expect([bind![4], bind![5]]).toEqual([1, 4]); // NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG
    expect([bind![18], bind![19]]).toEqual([0x0a, 0x9e]);
    expect([...mode!.subarray(24, 30)]).toEqual([0, 0, 0, 64, 2, 0]);
  });
});
