import { describe, expect, it } from "vitest";
import { MAX_KEY_BYTES, TCP_MD5SIG_SIZE, tcpMd5sig } from "../../lib/kernel/tcp-md5sig.ts";

describe("struct tcp_md5sig", () => {
  it("carries the peer as a sockaddr, the key length and the key at the kernel's offsets", () => {
    const b = tcpMd5sig("10.77.0.2", new TextEncoder().encode("s3cret"));
    const dv = new DataView(b.buffer);
    expect(b.length).toBe(TCP_MD5SIG_SIZE);
    expect(dv.getUint16(0, true)).toBe(2); // AF_INET
    expect(Array.from(b.subarray(4, 8))).toEqual([10, 77, 0, 2]);
    expect(dv.getUint16(130, true)).toBe(6);
    expect(new TextDecoder().decode(b.subarray(136, 142))).toBe("s3cret");
  });

  it("IPv6 peers put the address after port and flow info; an empty key (removal) has length 0", () => {
    const b = tcpMd5sig("fd00::1", new Uint8Array(0));
    expect(new DataView(b.buffer).getUint16(0, true)).toBe(10);
    expect(b[8]).toBe(0xfd);
    expect(b[23]).toBe(1);
    expect(new DataView(b.buffer).getUint16(130, true)).toBe(0);
  });

  it("a key longer than the kernel takes is refused with a sentence", () => {
    expect(() => tcpMd5sig("10.0.0.1", new Uint8Array(MAX_KEY_BYTES + 1))).toThrow(/at most 80 bytes/);
  });
});
