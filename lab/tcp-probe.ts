import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { execIn } from "../lib/kernel/netns.ts";
import type { LabPod } from "./cluster.ts";
import type { Expectation, Probe } from "./matrix.ts";

// TCP between pods, next to ping: a handshake proves more than ICMP (conntrack,
// a filtered port, an MTU problem on the first data). Timings come from one Node
// process per source pod that times net.connect itself, so the number is the
// handshake, not the cost of starting a program per pair.

export const TCP_PROBE_PORT = 7070;

// Runs inside the source pod's namespace: argv[1] is a JSON list of addresses.
// Prints one JSON line: [{ ip, ok, ms }].
const CLIENT = `
const net = require("node:net");
const targets = JSON.parse(process.argv[1]);
const port = Number(process.argv[2]);
const one = (ip) => new Promise((res) => {
  const t0 = performance.now();
  const s = net.connect({ host: ip, port, timeout: 2000 });
  s.once("connect", () => { const ms = performance.now() - t0; s.destroy(); res({ ip, ok: true, ms }); });
  s.once("timeout", () => { s.destroy(); res({ ip, ok: false }); });
  s.once("error", () => res({ ip, ok: false }));
});
(async () => { const out = []; for (const ip of targets) out.push(await one(ip)); console.log(JSON.stringify(out)); })();
`;

async function listening(ns: string): Promise<boolean> {
  const r = await execIn(ns, ["ss", "-Hltn", `sport = :${TCP_PROBE_PORT}`], { allowFailure: true });
  return r.stdout.trim() !== "";
}

/** Starts a TCP listener in every pod; the returned function stops them. */
async function startListeners(pods: LabPod[]): Promise<() => void> {
  const children: ChildProcess[] = pods.map((p) =>
    // ip netns exec execs socat, so the child's pid is the listener itself;
    // each accepted connection is answered with EOF and closed.
    spawn("ip", ["netns", "exec", p.ns, "socat", `TCP-LISTEN:${TCP_PROBE_PORT},reuseaddr,fork`, "OPEN:/dev/null"], { stdio: "ignore" }),
  );
  const stop = () => {
    for (const c of children) c.kill("SIGKILL");
  };
  try {
    for (const p of pods) {
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        ok = await listening(p.ns);
        if (!ok) await sleep(100);
      }
      if (!ok) throw new Error(`the TCP probe listener did not start in ${p.ns}`);
    }
  } catch (err) {
    stop();
    throw err;
  }
  return stop;
}

export async function probeTcpMatrix(pods: LabPod[], expected: Expectation): Promise<Probe[]> {
  const stop = await startListeners(pods);
  try {
    const rows = await Promise.all(
      pods.map(async (a) => {
        const targets = pods.filter((b) => b !== a);
        const r = await execIn(a.ns, [process.execPath, "-e", CLIENT, JSON.stringify(targets.map((b) => b.ip)), String(TCP_PROBE_PORT)], { allowFailure: true });
        let results: { ip: string; ok: boolean; ms?: number }[] = [];
        try {
          results = JSON.parse(r.stdout) as typeof results;
        } catch {
          results = [];
        }
        return targets.map((b): Probe => {
          const res = results.find((x) => x.ip === b.ip);
          return { from: a, to: b, ok: res?.ok ?? false, rttMs: res?.ms, expected: expected(a, b) };
        });
      }),
    );
    return rows.flat();
  } finally {
    stop();
  }
}
