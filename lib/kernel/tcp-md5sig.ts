import { TwillError } from "../errors.ts";
import { ipBytes } from "../netlink/rtnl.ts";

// struct tcp_md5sig (include/uapi/linux/tcp.h), the argument of
// setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, …) that gives a socket the RFC 2385
// key for one peer address. Pure bytes: the Bun-compiled binary sets it
// (cni/md5sig.ts), the daemon only hands that binary its listening socket.

export const IPPROTO_TCP = 6;
export const TCP_MD5SIG = 14;
/** TCP_MD5SIG_MAXKEYLEN. */
export const MAX_KEY_BYTES = 80;
/** sockaddr_storage (128) + flags, prefixlen (1 + 1) + keylen (2) + ifindex (4) + key (80). */
export const TCP_MD5SIG_SIZE = 216;

/** The option for `peer` with `key`; an empty key removes the peer's key. */
export function tcpMd5sig(peer: string, key: Uint8Array): Uint8Array {
  if (key.length > MAX_KEY_BYTES) throw new TwillError("BGP_MD5_KEY_INVALID", `a TCP MD5 key is at most ${MAX_KEY_BYTES} bytes; the key for ${peer} has ${key.length}`);
  const { family, bytes } = ipBytes(peer);
  const out = new Uint8Array(TCP_MD5SIG_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, family, true);
  // sockaddr_in: port (unused) then the address at 4; sockaddr_in6: port, flowinfo, then the address at 8.
  out.set(bytes, family === 2 ? 4 : 8);
  dv.setUint16(130, key.length, true);
  out.set(key, 136);
  return out;
}
