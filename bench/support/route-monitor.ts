// Counts one route protocol's IPv4 routes in the namespace it runs in, from
// rtnetlink's route events (RTMGRP_IPV4_ROUTE), never by dumping the table
// while a feed arrives:
//   node route-monitor.ts PROTOCOL TARGET MIN_DST
// Only routes at or above MIN_DST (dotted quad) count, so a receiver's own
// routes (Twill's blackhole) stay out. One JSON line per moment of interest
// on stdout, stamped when the event was read (ms, CLOCK_REALTIME):
//   {"event":"ready"} {"event":"full","at":…} {"event":"empty","at":…}
//   {"event":"lost"}: the socket overflowed (ENOBUFS); the table is dumped
//   again and counting goes on from what the dump found.
// Run it at real-time priority (chrt): on a loaded machine an ordinary
// process reads its events late.
import { createRequire } from "node:module";
import { dumpRoutes, parseRoute } from "../../lib/netlink/routes.ts";
import { AF, parseMessages, RTM } from "../../lib/netlink/rtnl.ts";
import { RtnlSocket } from "../../daemon/kernel/netlink-socket.ts";

const [protoArg, targetArg, minArg] = process.argv.slice(2);
const protocol = Number(protoArg);
const target = Number(targetArg);
const min = (minArg ?? "0.0.0.0").split(".").reduce((a, o) => a * 256 + Number(o), 0);
const RTMGRP_IPV4_ROUTE = 0x40;

interface Raw {
  on(event: "message", fn: (b: Buffer) => void): void;
  on(event: "error", fn: (e: Error & { code?: string }) => void): void;
}
const { RawNetlinkSocket } = createRequire(import.meta.url)("netlink/dist/raw.js") as {
  RawNetlinkSocket: new (protocol: number, o: { localGroups: number; recvBufferSize: number; sendBufferSize: number }) => Raw;
};

const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const now = () => performance.timeOrigin + performance.now();
const key = (dst: string) => {
  const [a, len] = dst.split("/");
  return { n: a!.split(".").reduce((x, o) => x * 256 + Number(o), 0), len: Number(len) };
};

const have = new Set<number>();
let wasFull = false;
const check = () => {
  if (!wasFull && have.size >= target) {
    wasFull = true;
    emit({ event: "full", at: now(), count: have.size });
  } else if (wasFull && have.size === 0) {
    wasFull = false;
    emit({ event: "empty", at: now() });
  }
};

const sock = new RawNetlinkSocket(0, { localGroups: RTMGRP_IPV4_ROUTE, recvBufferSize: 32 << 20, sendBufferSize: 1 << 16 });
sock.on("message", (buf) => {
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  for (const m of parseMessages(bytes)) {
    if (m.type !== RTM.NEWROUTE && m.type !== RTM.DELROUTE) continue;
    // parseRoute reads RTM_NEWROUTE's layout; a DELROUTE has the same one.
    const r = parseRoute(bytes, { ...m, type: RTM.NEWROUTE }, protocol);
    if (!r || r.table !== 254) continue;
    const k = key(r.dst);
    if (k.n < min) continue;
    const id = k.n * 64 + k.len;
    if (m.type === RTM.NEWROUTE) have.add(id);
    else have.delete(id);
  }
  check();
});
sock.on("error", (err) => {
  emit({ event: "lost", code: err.code ?? err.message });
  void resync();
});

async function resync(): Promise<void> {
  have.clear();
  await new RtnlSocket().dump((seq) => dumpRoutes(seq, AF.INET), "routes", (buf, m) => {
    const r = parseRoute(buf, m, protocol);
    if (!r || r.table !== 254) return;
    const k = key(r.dst);
    if (k.n >= min) have.add(k.n * 64 + k.len);
  });
  check();
}

await resync();
emit({ event: "ready", count: have.size });
