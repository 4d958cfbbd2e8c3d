import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { readFileSync } from "node:fs";
import { TwillError } from "../lib/errors.ts";
import { IPPROTO_TCP, TCP_MD5SIG, TCP_MD5SIG_SIZE, tcpMd5sig } from "../lib/kernel/tcp-md5sig.ts";
import { errnoSentence } from "../lib/netlink/errno.ts";

// `twill md5sig --fd N --peer ADDRESS`, key on stdin (empty: remove it).
// Node cannot setsockopt(2), but a socket option belongs to the open file
// description: the daemon passes its BGP listening socket to this binary as
// an inherited fd, this sets TCP_MD5SIG on it through libc, and connections
// the listener accepts from that peer inherit the key (docs/bgp.md).

// Opened on use: every CNI ADD loads this module and must not pay for it.
const openLibc = () =>
  dlopen("libc.so.6", {
    setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;

function arg(argv: string[], name: string): string {
  const i = argv.indexOf(name);
  const v = i >= 0 ? argv[i + 1] : undefined;
  if (!v) throw new TwillError("MD5SIG_USAGE", `usage: twill md5sig --fd N --peer ADDRESS (key on stdin); ${name} is missing`);
  return v;
}

export function runMd5sigCli(argv: string[]): number {
  const fd = Number(arg(argv, "--fd"));
  const peer = arg(argv, "--peer");
  // The key comes on stdin, never in argv (visible to every user in ps); a trailing newline is not part of it.
  const key = new TextEncoder().encode(readFileSync(0, "utf8").replace(/\n$/, ""));
  const opt = tcpMd5sig(peer, key);
  const libc = openLibc();
  if ((libc.setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, ptr(opt), TCP_MD5SIG_SIZE) as number) < 0) {
    const errno = read.i32(libc.__errno_location() as number);
    throw new TwillError("MD5SIG_FAILED", `setting the TCP MD5 key for ${peer} on fd ${fd} failed: ${errnoSentence(errno)}`);
  }
  return 0;
}
