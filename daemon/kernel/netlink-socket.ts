import { createRequire } from "node:module";
import { TwillError } from "../../lib/errors.ts";
import { errnoSentence } from "../../lib/netlink/errno.ts";
import { ackBarrier, concat, errorOf, NLMSG_DONE, NLMSG_ERROR, parseMessages, type MessageHeader } from "../../lib/netlink/rtnl.ts";

// An rtnetlink socket for the daemon, through the `netlink` addon (Node has
// no AF_NETLINK sockets). Only its raw layer is used: Twill builds and parses
// the bytes itself (lib/netlink/). The socket belongs to the network
// namespace the process runs in. One exchange at a time; the kernel handles
// a request inside sendmsg(2), so every answer to a batch is queued by the
// time the batch's ACK barrier is answered.

/** The part of netlink's RawNetlinkSocket used here (its own typings pull in @types/node 12). */
export interface RawSocket {
  send(msg: Uint8Array | Uint8Array[], options?: { port?: number }, callback?: (error?: Error & { errno?: number }) => void): void;
  on(event: "message", listener: (msg: Buffer) => void): void;
  on(event: "error", listener: (err: Error & { code?: string }) => void): void;
  close(): void;
  ref(): void;
  unref(): void;
}

const NETLINK_ROUTE = 0;
/** Large enough for the failures of a whole batch (each reply skb costs ~1 KiB of it), capped by net.core.rmem_max. */
const RECV_BUFFER = 8 << 20;
const SEND_BUFFER = 1 << 20;
/** Bytes per sendmsg(2): the kernel refuses a datagram larger than the send buffer. */
const MAX_DATAGRAM = 64 << 10;
/** Messages per batch: bounds how many failure replies can wait in the receive buffer at once. */
const MAX_BATCH = 1024;
const TIMEOUT_MS = 15_000;
/** Room left for one message before encoding it (a route message is at most 76 bytes, a neighbour or FDB one 60). */
const MAX_MESSAGE = 256;

let loaded: (new (protocol: number, options: { recvBufferSize: number; sendBufferSize: number }) => RawSocket) | undefined;

export function rawSocketClass() {
  if (!loaded) {
    try {
      loaded = (createRequire(import.meta.url)("netlink/dist/raw.js") as { RawNetlinkSocket: typeof loaded }).RawNetlinkSocket;
    } catch (err) {
      throw new TwillError("NETLINK_UNAVAILABLE", "the netlink addon could not be loaded: reinstall the daemon's npm dependencies (npm ci) for this platform", String(err));
    }
  }
  return loaded!;
}

// A datagram of one part goes as it is; more are joined into one buffer.
const joined = (parts: Uint8Array[]): Uint8Array => (parts.length === 1 ? parts[0]! : concat(parts));

/** Encodes request `index` with sequence number `seq` into buf at off; returns the offset after it. */
export type Encoder = (index: number, seq: number, buf: Uint8Array, off: number) => number;

export interface Failure {
  /** Index of the failed message in the batch passed to send. */
  index: number;
  errno: number;
}

interface Exchange {
  onMessage(buf: Uint8Array, m: MessageHeader): boolean;
  fail(err: Error): void;
}

export class RtnlSocket {
  private sock: RawSocket | undefined;
  private seq = 1;
  private current: Exchange | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Reused for every batch: a batch is sent and answered before the next is encoded. */
  private readonly batchBuffer = new Uint8Array(MAX_DATAGRAM + 64);

  private open(): RawSocket {
    if (this.sock) return this.sock;
    const Raw = rawSocketClass();
    const sock = new Raw(NETLINK_ROUTE, { recvBufferSize: RECV_BUFFER, sendBufferSize: SEND_BUFFER });
    sock.unref();
    sock.on("message", (buf) => {
      const ex = this.current;
      if (!ex) return;
      const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
      for (const m of parseMessages(bytes)) if (ex.onMessage(bytes, m)) return;
    });
    // ENOBUFS: replies were dropped; nothing later on this socket can be trusted to line up.
    sock.on("error", (err) => this.reset(new TwillError("NETLINK_LOST", `netlink replies were lost (${err.code ?? err.message}); the kernel is read again on the next reconcile`)));
    this.sock = sock;
    return sock;
  }

  private reset(err: Error): void {
    this.current?.fail(err);
    this.current = undefined;
    this.sock?.close();
    this.sock = undefined;
  }

  /** Sequence numbers of one batch are consecutive: wrap only between batches. */
  private nextSeq(): number {
    return ++this.seq;
  }

  private wrapSeq(): void {
    if (this.seq > 0x7fffffff - MAX_BATCH - 2) this.seq = 0;
  }

  /** Runs exchanges one after the other, whoever calls. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Sends one datagram and feeds replies to `onMessage` until it returns true. */
  private exchange(datagram: Uint8Array[], what: string, onMessage: (buf: Uint8Array, m: MessageHeader) => boolean): Promise<void> {
    const sock = this.open();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.reset(new TwillError("NETLINK_TIMEOUT", `the kernel did not answer ${what} within ${TIMEOUT_MS} ms; the socket was reopened`)), TIMEOUT_MS);
      const done = (err?: Error) => {
        clearTimeout(timer);
        sock.unref();
        if (this.current === ex) this.current = undefined;
        if (err) reject(err);
        else resolve();
      };
      const ex: Exchange = {
        onMessage: (buf, m) => {
          if (!onMessage(buf, m)) return false;
          done();
          return true;
        },
        fail: done,
      };
      this.current = ex;
      sock.ref();
      // One buffer, not an iovec per message: sendmsg(2) takes at most 1024 iovecs (UIO_MAXIOV).
      sock.send(joined(datagram), { port: 0 }, (err) => {
        if (err) done(new TwillError("NETLINK_SEND", `sending ${what} to the kernel failed: ${err.errno ? errnoSentence(err.errno) : err.message}`));
      });
    });
  }

  /**
   * Sends `count` requests that ask for no ACK (route writes), encoded in
   * place by `encode` (which returns the offset after the message), in
   * batches each closed by an ACK barrier, and returns the ones the kernel
   * refused. Every message is applied on its own: a failure does not stop
   * the rest.
   */
  write(count: number, encode: Encoder, what = "route writes"): Promise<Failure[]> {
    return this.serial(async () => {
      const failures: Failure[] = [];
      const buf = this.batchBuffer;
      for (let start = 0; start < count; ) {
        this.wrapSeq();
        const firstSeq = this.seq + 1;
        let off = 0;
        let i = start;
        for (; i < count && i - start < MAX_BATCH && off + MAX_MESSAGE <= MAX_DATAGRAM; i++) off = encode(i, this.nextSeq(), buf, off);
        const barrier = this.nextSeq();
        const ack = ackBarrier(barrier);
        buf.set(ack, off);
        const batchStart = start;
        const end = i;
        await this.exchange([buf.subarray(0, off + ack.length)], `${end - start} ${what}`, (reply, m) => {
          if (m.type !== NLMSG_ERROR) return false;
          if (m.seq === barrier) return true;
          const index = batchStart + (m.seq - firstSeq);
          if (index >= batchStart && index < end) failures.push({ index, errno: errorOf(reply, m) });
          return false;
        });
        start = end;
      }
      return failures;
    });
  }

  /**
   * Sends one request that answers with a dump (NLM_F_DUMP) and hands each
   * message to `each`; `emptyOn` lists errnos that mean "nothing to dump"
   * (EAFNOSUPPORT for IPv6 on a kernel booted without it). An error `each`
   * throws (a malformed message) fails the dump once it has been read to
   * its end, so the socket stays in step with the kernel.
   */
  dump(build: (seq: number) => Uint8Array, what: string, each: (buf: Uint8Array, m: MessageHeader) => void, emptyOn: number[] = []): Promise<void> {
    return this.serial(async () => {
      this.wrapSeq();
      const seq = this.nextSeq();
      let failed = 0;
      let thrown: unknown;
      await this.exchange([build(seq)], what, (buf, m) => {
        if (m.seq !== seq) return false;
        if (m.type === NLMSG_DONE) return true;
        if (m.type === NLMSG_ERROR) {
          failed = errorOf(buf, m);
          return true;
        }
        try {
          if (thrown === undefined) each(buf, m);
        } catch (err) {
          thrown = err;
        }
        return false;
      });
      if (thrown !== undefined) throw thrown;
      if (failed && !emptyOn.includes(failed)) throw new TwillError("KERNEL_READ", `reading ${what} from the kernel failed: ${errnoSentence(failed)}`);
    });
  }

  /** One request that returns a single message (e.g. RTM_GETLINK by name), an error, or, asked for with NLM_F_ACK, an acknowledgement ({ errno: 0 }); an error `read` throws is the request's. */
  request<T>(build: (seq: number) => Uint8Array, what: string, read: (buf: Uint8Array, m: MessageHeader) => T): Promise<T | { errno: number }> {
    return this.serial(async () => {
      this.wrapSeq();
      const seq = this.nextSeq();
      let out: T | { errno: number } = { errno: 71 };
      let thrown: unknown;
      await this.exchange([build(seq)], what, (buf, m) => {
        if (m.seq !== seq) return false;
        if (m.type === NLMSG_ERROR) {
          // errno 0: the acknowledgement of a request that asked for one.
          out = { errno: errorOf(buf, m) };
          return true;
        }
        // Thrown here, an error would escape through the socket's event handler.
        try {
          out = read(buf, m);
        } catch (err) {
          thrown = err;
        }
        // A GET without NLM_F_ACK ends with its answer.
        return true;
      });
      if (thrown !== undefined) throw thrown;
      return out;
    });
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}

/** The daemon's one rtnetlink socket (opened on first use): routes, neighbours, FDB and links share it. */
export const rtnl = new RtnlSocket();
