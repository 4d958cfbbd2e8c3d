import { spawn } from "node:child_process";
import type { V1Pod } from "@kubernetes/client-node";
import type { TraceReply, TraceRequest, TraceStep } from "../../lib/ctl-api.ts";
import { TwillError } from "../../lib/errors.ts";
import { exec } from "../../lib/kernel/exec.ts";
import type { ApiContext } from "./context.ts";
import { resolveEndpoint } from "./explain.ts";

// `twillctl trace`: one real packet, followed through every nftables chain of
// this node by the kernel's own tracing. A table of Twill's (twill-trace,
// priority -400 at prerouting: before conntrack, kube-proxy and Twill's
// policy) sets `meta nftrace` on packets of exactly this connection;
// `nft monitor trace` prints each rule they meet, in every table (kube-proxy's
// too when it programs nftables, as iptables-nft or in nftables mode). In
// probe mode the packet is a real connection attempt from the source pod's
// network namespace; in observe mode (the destination's node) the daemon only
// traces, for a few seconds. One trace at a time per node; the table is
// removed afterwards, whatever happens.

const TRACE_TABLE = "twill-trace";
const MAX_OBSERVE_SECONDS = 5;
let busy = false;

const PROBE = `
const [proto, host, port] = process.argv.slice(1);
const done = (ok) => { console.log(JSON.stringify({ ok })); process.exit(0); };
if (proto === "udp") {
  const s = require("node:dgram").createSocket("udp4");
  s.send("twill-trace", Number(port), host, () => setTimeout(() => done(true), 200));
} else {
  const c = require("node:net").connect({ host, port: Number(port), timeout: 1500 });
  c.once("connect", () => { c.destroy(); done(true); });
  c.once("timeout", () => { c.destroy(); done(false); });
  c.once("error", () => done(false));
}`;

/** The named network namespace (in /run/netns) holding the pod whose address is `ip`, found through its host veth. */
export async function podNetns(ip: string): Promise<string> {
  const route = await exec(["ip", "-j", "route", "get", ip], { allowFailure: true });
  const dev = (JSON.parse(route.stdout || "[]") as { dev?: string }[])[0]?.dev;
  if (!dev) throw new TwillError("NOT_FOUND", `no route to pod ${ip} on this node`);
  const link = (JSON.parse((await exec(["ip", "-j", "link", "show", "dev", dev])).stdout) as { link_netnsid?: number }[])[0];
  if (link?.link_netnsid === undefined) throw new TwillError("NOT_FOUND", `pod ${ip}'s device ${dev} is not a veth into another namespace`);
  const list = await exec(["ip", "netns", "list"]);
  for (const line of list.stdout.split("\n")) {
    const m = /^(\S+) \(id: (\d+)\)/.exec(line.trim());
    if (m && Number(m[2]) === link.link_netnsid) return `/run/netns/${m[1]}`;
  }
  throw new TwillError("NOT_FOUND", `pod ${ip}'s network namespace (id ${link.link_netnsid}) has no name in /run/netns: the daemon needs the host's /run/netns`);
}

const TRACE_LINE = /^trace id (\S+) (\S+) (\S+) (\S+) (?:rule (.*) \(verdict ([^)]+)\)|policy (\S+)|verdict (\S+))\s*$/;

/**
 * The steps of `nft monitor trace`'s output for the first traced packet
 * (a TCP probe's retransmitted SYNs take the same way again; packet lines,
 * which only describe the packet, are left out), and how many packets were traced.
 */
export function parseTrace(text: string, node: string): { steps: TraceStep[]; packets: number } {
  const steps: TraceStep[] = [];
  const ids = new Set<string>();
  let first: string | undefined;
  for (const line of text.split("\n")) {
    const m = TRACE_LINE.exec(line.trim());
    if (!m) continue;
    const [, id, family, table, chain, rule, verdict, policy, bare] = m;
    ids.add(id!);
    first ??= id;
    if (table === TRACE_TABLE || id !== first) continue;
    steps.push({ node, table: `${family} ${table}`, chain: chain!, rule: rule ?? "policy", verdict: verdict ?? policy ?? bare ?? "" });
  }
  return { steps, packets: ids.size };
}

const decisionOf = (steps: TraceStep[]) => steps.find((s) => /^drop|^reject/.test(s.verdict)) ?? steps.filter((s) => s.verdict === "accept").pop() ?? null;

export async function trace(ctx: ApiContext, req: TraceRequest): Promise<TraceReply> {
  if (busy) throw new TwillError("TRACE_BUSY", "another trace is running on this node; try again in a few seconds");
  busy = true;
  try {
    return await traceOnce(ctx, req);
  } finally {
    busy = false;
  }
}

async function endpoints(ctx: ApiContext, req: TraceRequest): Promise<{ src: string; dst: string }> {
  const state = ctx.policy?.inputs() ?? { pods: await ctx.podsOnNode(), namespaces: [], policies: [] };
  const ip = (e: ReturnType<typeof resolveEndpoint>) => ("pod" in e ? (e.pod as V1Pod).status!.podIP! : e.ip);
  return { src: ip(resolveEndpoint(state, req.src)), dst: ip(resolveEndpoint(state, req.dst)) };
}

async function traceOnce(ctx: ApiContext, req: TraceRequest): Promise<TraceReply> {
  const { src, dst } = await endpoints(ctx, req);
  if (src.includes(":") || dst.includes(":")) throw new TwillError("BAD_REQUEST", "trace follows IPv4 connections only so far");
  const netns = req.mode === "probe" ? await podNetns(src) : undefined;
  const match = `ip saddr ${src} ip daddr ${dst} meta l4proto ${req.proto} th dport ${req.port} meta nftrace set 1`;
  await nftRun(ctx, `table inet ${TRACE_TABLE}\ndelete table inet ${TRACE_TABLE}\ntable inet ${TRACE_TABLE} {\n  chain pre {\n    type filter hook prerouting priority -400; policy accept;\n    ${match}\n  }\n}\n`);
  let out = "";
  const monitor = spawn(ctx.nft[0]!, [...ctx.nft.slice(1), "monitor", "trace"], { stdio: ["ignore", "pipe", "ignore"] });
  monitor.stdout.setEncoding("utf8").on("data", (d: string) => (out += d.length + out.length < 1 << 20 ? d : ""));
  try {
    // nft subscribes to trace events before it prints anything; give it a moment to start.
    await new Promise((r) => setTimeout(r, 300));
    let connected: boolean | undefined;
    if (netns) {
      const probe = await exec(["nsenter", `--net=${netns}`, process.execPath, "-e", PROBE, req.proto, dst, String(req.port)], { allowFailure: true });
      connected = (JSON.parse(probe.stdout.trim() || '{"ok":false}') as { ok: boolean }).ok;
      await new Promise((r) => setTimeout(r, 300));
    } else {
      await new Promise((r) => setTimeout(r, Math.min(MAX_OBSERVE_SECONDS, req.seconds ?? 3) * 1000));
    }
    const { steps, packets } = parseTrace(out, ctx.nodeName);
    return { node: ctx.nodeName, ...(connected === undefined ? {} : { connected }), packets, steps, decision: decisionOf(steps) };
  } finally {
    monitor.kill();
    await nftRun(ctx, `delete table inet ${TRACE_TABLE}\n`).catch((err: unknown) => ctx.log.error({ err: (err as Error).message }, "removing the trace table failed"));
  }
}

/** A trace table left by a daemon that died mid-trace goes at start (in the background: nothing waits for it). */
export function removeStaleTraceTable(ctx: ApiContext): void {
  void exec([...ctx.nft, "delete", "table", "inet", TRACE_TABLE], { allowFailure: true });
}

async function nftRun(ctx: ApiContext, text: string): Promise<void> {
  const r = await exec([...ctx.nft, "-f", "-"], { input: text, allowFailure: true });
  if (r.code !== 0) throw new TwillError("NFT_TRACE", "nft refused the trace table", r.stderr.trim());
}
