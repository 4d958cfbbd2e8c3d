// bench:services' TCP load, run inside a lab namespace (`ip netns exec NS node conn-load.ts MODE …`):
//   serve PORT                      accept and keep nothing (the client resets)
//   wait IP PORT TIMEOUT_MS         a connection every 10 ms until one succeeds; prints {"t": its start, epoch ms}
//   latency IP PORT COUNT           COUNT connections one after another (after 20 not counted); prints {"us": [handshake µs…], "failed": n}
//   rate IP PORT CONCURRENCY SECONDS  CONCURRENCY connections at a time for SECONDS; prints {"connections", "failed", "seconds"}
// Every client connection ends with a reset (SO_LINGER 0): no TIME_WAIT to run out of ports, and conntrack
// forgets the flow within seconds, so the machine-wide conntrack table never fills.
import { connect, createServer } from "node:net";

const [mode, ...a] = process.argv.slice(2);
const now = () => performance.timeOrigin + performance.now();

function once(ip: string, port: number, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = connect({ host: ip, port, timeout: timeoutMs, noDelay: true });
    const fail = () => {
      s.destroy();
      resolve(undefined);
    };
    s.once("connect", () => {
      const us = (performance.now() - t0) * 1000;
      s.resetAndDestroy();
      resolve(us);
    });
    s.once("timeout", fail);
    s.once("error", fail);
  });
}

if (mode === "serve") {
  const server = createServer((s) => s.on("error", () => {}));
  server.listen(Number(a[0]), "0.0.0.0", () => process.stdout.write("listening\n"));
} else if (mode === "wait") {
  const [ip, port, timeoutMs] = [a[0]!, Number(a[1]), Number(a[2])];
  const deadline = now() + timeoutMs;
  for (;;) {
    const t = now();
    if ((await once(ip, port, 100)) !== undefined) {
      console.log(JSON.stringify({ t }));
      break;
    }
    if (now() > deadline) process.exit(1);
    await new Promise((r) => setTimeout(r, Math.max(0, 10 - (now() - t))));
  }
} else if (mode === "latency") {
  const [ip, port, count] = [a[0]!, Number(a[1]), Number(a[2])];
  const us: number[] = [];
  let failed = 0;
  // Warm-up, not counted: the loader's first connections pay for JIT compilation and neighbour resolution.
  for (let i = 0; i < 20; i++) await once(ip, port, 1000);
  for (let i = 0; i < count; i++) {
    const r = await once(ip, port, 1000);
    if (r === undefined) failed++;
    else us.push(Math.round(r * 10) / 10);
  }
  console.log(JSON.stringify({ us, failed }));
} else if (mode === "rate") {
  const [ip, port, concurrency, seconds] = [a[0]!, Number(a[1]), Number(a[2]), Number(a[3])];
  const end = now() + seconds * 1000;
  let connections = 0;
  let failed = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (now() < end) {
        if ((await once(ip, port, 1000)) === undefined) failed++;
        else connections++;
      }
    }),
  );
  console.log(JSON.stringify({ connections, failed, seconds: (now() - t0) / 1000 }));
} else {
  console.error("usage: conn-load.ts serve|wait|latency|rate …");
  process.exit(2);
}
