import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { errorOf, NLMSG_DONE, NLMSG_ERROR, parseMessages, parseReply, type MessageHeader, type Reply } from "../../lib/netlink/rtnl.ts";

// An rtnetlink socket through libc, called with Bun's FFI: the plugin talks
// to the kernel in-process instead of running `ip` (two processes and ~10 ms
// per ADD, measured). A socket belongs to the network namespace it was
// created in, so the pod's socket is opened after setns(2) into the pod and
// the thread switches straight back.

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const O_RDONLY_CLOEXEC = 0x80000;
const CLONE_NEWNET = 0x40000000;

const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  open: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;

export class NetlinkError extends Error {
  readonly errno: number;
  readonly op: string;

  constructor(op: string, errno: number) {
    super(`${op}: ${errnoName(errno)}`);
    this.errno = errno;
    this.op = op;
  }
}

export const ERRNO = { ENOENT: 2, EEXIST: 17, ENODEV: 19 } as const;

function errnoName(errno: number): string {
  const names = process.getBuiltinModule("node:os").constants.errno as Record<string, number>;
  const name = Object.keys(names).find((k) => names[k] === errno);
  return name ? `${name} (${errno})` : `errno ${errno}`;
}

function lastErrno(): number {
  return read.i32(libc.__errno_location() as number);
}

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

export function openNetns(path: string): number {
  const fd = libc.open(ptr(cString(path)), O_RDONLY_CLOEXEC) as number;
  if (fd < 0) throw new NetlinkError(`open ${path}`, lastErrno());
  return fd;
}

export function closeFd(fd: number): void {
  libc.close(fd);
}

export class Rtnl {
  private readonly fd: number;
  private seq = 1;
  private readonly buf = new Uint8Array(65536);

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** A socket in the caller's own namespace. */
  static open(): Rtnl {
    const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
    if (fd < 0) throw new NetlinkError("netlink socket", lastErrno());
    return new Rtnl(fd);
  }

  /** A socket in the namespace `netnsFd` refers to. */
  static openIn(netnsFd: number): Rtnl {
    const self = openNetns("/proc/thread-self/ns/net");
    try {
      if ((libc.setns(netnsFd, CLONE_NEWNET) as number) < 0) throw new NetlinkError("setns into the pod", lastErrno());
      try {
        return Rtnl.open();
      } finally {
        if ((libc.setns(self, CLONE_NEWNET) as number) < 0) throw new NetlinkError("setns back to the node", lastErrno());
      }
    } finally {
      closeFd(self);
    }
  }

  nextSeq(): number {
    return this.seq++;
  }

  /** Sends one request and returns the kernel's first reply message. */
  request(op: string, msg: Uint8Array): Reply {
    if (Number(libc.send(this.fd, ptr(msg), msg.length, 0)) < 0) throw new NetlinkError(op, lastErrno());
    const n = Number(libc.recv(this.fd, ptr(this.buf), this.buf.length, 0));
    if (n < 0) throw new NetlinkError(op, lastErrno());
    return parseReply(this.buf, n);
  }

  /** A request that must be acknowledged; throws the kernel's errno otherwise. */
  must(op: string, msg: Uint8Array): void {
    const r = this.request(op, msg);
    if (r.kind === "error") throw new NetlinkError(op, r.errno);
  }

  /** Sends a dump request and hands every message of the answer to `visit` (the buffer is reused: read it there). */
  dump(op: string, msg: Uint8Array, visit: (buf: Uint8Array, m: MessageHeader) => void): void {
    if (Number(libc.send(this.fd, ptr(msg), msg.length, 0)) < 0) throw new NetlinkError(op, lastErrno());
    for (;;) {
      const n = Number(libc.recv(this.fd, ptr(this.buf), this.buf.length, 0));
      if (n < 0) throw new NetlinkError(op, lastErrno());
      for (const m of parseMessages(this.buf, n)) {
        if (m.type === NLMSG_DONE) return;
        if (m.type === NLMSG_ERROR) {
          const errno = errorOf(this.buf, m);
          if (errno !== 0) throw new NetlinkError(op, errno);
          return;
        }
        visit(this.buf, m);
      }
    }
  }

  close(): void {
    closeFd(this.fd);
  }
}
