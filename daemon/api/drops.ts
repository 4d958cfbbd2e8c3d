import type { DropCount, DropEvent, DropsReply } from "../../lib/ctl-api.ts";
import { DROP_LOG_GROUP } from "../../lib/ctl-api.ts";
import type { Logger } from "../../lib/log.ts";
import { bindGroup, NETLINK_NETFILTER, parsePackets, unbindGroup, type LoggedPacket } from "../../lib/netlink/nflog.ts";
import { rawSocketClass, type RawSocket } from "../kernel/netlink-socket.ts";
import { TABLE } from "../policy/compile.ts";
import { selectingPolicies, type ClusterState } from "../policy/model.ts";
import { exec } from "../../lib/kernel/exec.ts";

// NetworkPolicy drops on this node. Totals: the counter on each isolated
// pod's final rule (compile.ts, `counter goto drop-…`). Recent drops: the
// shared drop chains log to nflog group DROP_LOG_GROUP, rate-limited in the
// kernel (50/s, burst 100, per direction and node), and this reader keeps
// the last RECENT of them. Each is attributed when it arrives: the pod is the
// destination (ingress) or the source (egress), its isolating policies from
// the policy controller's current inputs.

const RECENT = 1000;
/** Bytes of each packet the kernel copies: the IPv4 header and the ports. */
const COPY_RANGE = 64;

export class DropLog {
  private sock: RawSocket | undefined;
  private readonly recent: DropEvent[] = [];
  private readonly followers = new Set<(e: DropEvent) => void>();
  seen = 0;
  private malformed = 0;
  private readonly nodeName: string;
  private readonly inputs: () => ClusterState | undefined;
  private readonly log: Logger;

  constructor(nodeName: string, inputs: () => ClusterState | undefined, log: Logger) {
    this.nodeName = nodeName;
    this.inputs = inputs;
    this.log = log;
  }

  /** Binds the nflog group; a failure is logged once and leaves totals working. */
  start(): void {
    try {
      const Raw = rawSocketClass();
      const sock = new Raw(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: 64 << 10 });
      sock.on("message", (buf) => {
        try {
          for (const p of parsePackets(new Uint8Array(buf.buffer, buf.byteOffset, buf.length))) this.add(p);
        } catch (err) {
          // A message the codec cannot read loses that drop's record, never the daemon.
          if (!this.malformed++) this.log.warn({ code: "NFLOG_MALFORMED", err: (err as Error).message }, "a drop log message could not be read");
        }
      });
      sock.on("error", (err) => this.log.warn({ code: "NFLOG_ERROR", err: err.message }, "the drop log's netlink socket failed; recent drops may be missing"));
      sock.unref();
      for (const m of bindGroup(1, DROP_LOG_GROUP, COPY_RANGE)) sock.send(m, { port: 0 }, (err) => err && this.log.warn({ code: "NFLOG_BIND", err: err.message }, `binding nflog group ${DROP_LOG_GROUP} failed; twillctl drops shows totals only`));
      this.sock = sock;
    } catch (err) {
      this.log.warn({ code: "NFLOG_UNAVAILABLE", err: (err as Error).message }, "no nflog reader: twillctl drops shows totals only");
    }
  }

  stop(): void {
    if (!this.sock) return;
    this.sock.send(unbindGroup(3, DROP_LOG_GROUP), { port: 0 }, () => this.sock?.close());
  }

  private add(p: LoggedPacket): void {
    const direction = p.prefix.startsWith("egress") ? "egress" : "ingress";
    const podIp = direction === "ingress" ? p.dst : p.src;
    const state = this.inputs();
    const pod = state?.pods.find((x) => x.status?.podIP === podIp && x.spec?.nodeName === this.nodeName);
    const e: DropEvent = {
      time: new Date(p.time).toISOString(),
      node: this.nodeName,
      direction,
      pod: pod ? `${pod.metadata?.namespace}/${pod.metadata?.name}` : podIp,
      src: p.src,
      dst: p.dst,
      proto: p.proto === 6 ? "tcp" : p.proto === 17 ? "udp" : p.proto === 132 ? "sctp" : p.proto === 1 ? "icmp" : String(p.proto),
      port: p.dport,
      isolatedBy: pod && state ? selectingPolicies(state, pod, direction === "ingress" ? "Ingress" : "Egress").map((x) => `${x.metadata?.namespace}/${x.metadata?.name}`) : [],
    };
    this.seen++;
    this.recent.push(e);
    if (this.recent.length > RECENT) this.recent.shift();
    for (const f of this.followers) f(e);
  }

  /** Recent drops, those of `pod` (namespace/name) only when given. */
  events(pod?: string): DropEvent[] {
    return pod ? this.recent.filter((e) => e.pod === pod) : [...this.recent];
  }

  follow(onEvent: (e: DropEvent) => void): () => void {
    this.followers.add(onEvent);
    return () => this.followers.delete(onEvent);
  }
}

/** The drop counters of every isolated pod's chains (`nft -t`: rules without set elements). */
export async function dropTotals(nft: string[], inputs: ClusterState | undefined, nodeName: string, strict = false): Promise<DropCount[]> {
  const r = await exec([...nft, "-j", "-t", "list", "table", "inet", TABLE], { allowFailure: true });
  // strict (the drop metrics, daemon/health/drops.ts): a listing that failed is not "no drops".
  if (r.code !== 0 && strict && !/No such file or directory/.test(r.stderr)) throw new Error(`nft list table inet ${TABLE} failed: ${r.stderr.trim().slice(0, 300)}`);
  if (r.code !== 0) return [];
  const doc = JSON.parse(r.stdout) as { nftables: { rule?: { chain: string; expr: Record<string, unknown>[] } }[] };
  const out: DropCount[] = [];
  for (const o of doc.nftables) {
    const rule = o.rule;
    const m = rule && /^(in|eg)-(\d+_\d+_\d+_\d+)$/.exec(rule.chain);
    if (!rule || !m) continue;
    const counter = rule.expr.find((x) => "counter" in x)?.counter as { packets: number; bytes: number } | undefined;
    if (!counter || !rule.expr.some((x) => "goto" in x)) continue;
    const ip = m[2]!.replaceAll("_", ".");
    const pod = inputs?.pods.find((p) => p.status?.podIP === ip && p.spec?.nodeName === nodeName);
    out.push({ pod: pod ? `${pod.metadata?.namespace}/${pod.metadata?.name}` : ip, ip, direction: m[1] === "in" ? "ingress" : "egress", packets: counter.packets, bytes: counter.bytes });
  }
  return out;
}

export async function drops(nft: string[], log: DropLog | undefined, inputs: ClusterState | undefined, nodeName: string, pod?: string): Promise<DropsReply> {
  const totals = (await dropTotals(nft, inputs, nodeName)).filter((t) => !pod || t.pod === pod);
  return { node: nodeName, totals, recent: log?.events(pod) ?? [], seen: log?.seen ?? 0 };
}
