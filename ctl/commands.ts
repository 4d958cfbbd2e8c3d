import type { DiffReply, DropEvent, DropsReply, ExplainReply, IpamGcReply, IpamReply, StatusReply, TraceReply } from "../lib/ctl-api.ts";
import { EXIT, parsePortProto } from "../lib/ctl-api.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { call } from "./client.ts";
import { CtlError } from "./errors.ts";
import { ago, duration, emit, fields, paint, table, verdictColour, writeOut, type Format } from "./output.ts";
import { Targets } from "./targets.ts";

// The commands: each asks one or more daemons (targets.ts), prints (output.ts)
// and returns its exit code.

export interface Command extends CommandSpec {
  run(p: Parsed, format: Format): Promise<number>;
}

const NODE_OPTS = { node: { type: "string" as const }, "all-nodes": { type: "boolean" as const } };
const NODE_HELP = ["      --node N      ask node N's daemon (over its health port, found with the kubeconfig)", "      --all-nodes   ask every node's daemon"];

function failedNodes(rows: { node: string; error?: string }[]): string {
  const bad = rows.filter((r) => r.error);
  return bad.length ? "\n" + bad.map((r) => paint("red", `${r.node}: ${r.error}`)).join("\n") : "";
}

const worst = (rows: { error?: string; exit?: number }[], findings: boolean) => (rows.some((r) => r.error) ? (rows.length === 1 ? (rows[0]!.exit ?? EXIT.UNREACHABLE) : EXIT.FINDINGS) : findings ? EXIT.FINDINGS : EXIT.OK);

const status: Command = {
  name: "status",
  args: "[--all-nodes | --node N]",
  summary: "daemon version, backend, readiness, last sync, MTU, programmed counts, BGP sessions, nodes left out",
  options: NODE_OPTS,
  help: [...NODE_HELP, "", "Exit 1 when a daemon is not ready (or, with --all-nodes, cannot be reached)."],
  async run(p, format) {
    const rows = await new Targets(p).each<StatusReply>(p, "/status");
    const replies = rows.flatMap((r) => (r.reply ? [r.reply] : []));
    emit(format, p.values["all-nodes"] ? rows.map((r) => r.reply ?? { node: r.node, error: r.error }) : replies[0], () => {
      if (!p.values["all-nodes"]) return one(replies[0]!);
      const t = table(
        ["node", "ready", "backend", "version", "last sync", "mtu", "routes", "neighbours", "isolated pods", "policies", "bgp up", "left out"],
        replies.map((s) => [s.node, verdictColour(s.ready ? "yes" : "no"), s.backend, s.version, ago(s.lastSync), s.mtu ?? "-", `${s.counts.routes}/${s.kernel.routes}`, `${s.counts.neighbours}/${s.kernel.neighbours}`, s.counts.isolatedPods ?? "-", s.counts.policies ?? "-", s.bgp.length ? `${s.bgp.filter((b) => b.state === "Established").length}/${s.bgp.length}` : "-", s.leftOut.length]),
      );
      const left = replies.flatMap((s) => s.leftOut.map((l) => [s.node, l.node, l.code, l.reason]));
      return t + (left.length ? "\n\nNodes left out:\n" + table(["seen by", "node", "code", "reason"], left) : "") + failedNodes(rows);
    });
    return worst(rows, replies.some((s) => !s.ready));
  },
};

function one(s: StatusReply): string {
  const c = s.counts;
  const parts = [
    fields([
      ["node", s.node],
      ["version", s.version],
      ["backend", s.backend],
      ["ready", verdictColour(s.ready ? "yes" : "no") + (s.lastError ? ` (${s.lastError})` : "")],
      ["last sync", `${ago(s.lastSync)}${s.lastSync ? ` (${s.lastSync})` : ""}`],
      ["MTU", s.mtu ?? "-"],
      ["pod CIDRs", s.podCIDRs.join(", ") || "-"],
      ["NetworkPolicy", s.policy],
    ]),
    "",
    table(["programmed", "wanted", "in kernel"], [
      ["routes", c.routes, s.kernel.routes],
      ["neighbours", c.neighbours, s.kernel.neighbours],
      ["fdb", c.fdb, s.kernel.fdb],
      ["isolated pods", c.isolatedPods ?? "-", "-"],
      ["policies", c.policies ?? "-", "-"],
      ["services", c.services ?? "kube-proxy", "-"],
    ]),
  ];
  if (s.bgp.length) parts.push("", table(["bgp peer", "state", "since", "prefixes in", "prefixes out"], s.bgp.map((b) => [b.peer, verdictColour(b.state), duration(b.sinceSeconds), b.prefixesIn, b.prefixesOut])));
  if (s.leftOut.length) parts.push("", "Nodes left out:", table(["node", "code", "reason"], s.leftOut.map((l) => [l.node, l.code, l.reason])));
  return parts.join("\n");
}

const ipam: Command = {
  name: "ipam",
  args: "[--node N]",
  summary: "pod CIDR use, allocations with their container and pod, leak candidates",
  options: { node: { type: "string" } },
  help: [NODE_HELP[0]!, "", "A leak candidate: an address no pod on the node has, allocated over a minute ago. Exit 1 when there are any."],
  async run(p, format) {
    const r = await call<IpamReply>(await new Targets(p).one(p), "/ipam");
    emit(format, r, () =>
      [
        table(["pod cidr", "size", "used"], r.cidrs.map((c) => [c.cidr, c.size, c.used])),
        "",
        table(["ip", "pod", "container", "ifname", "allocated", "leak"], r.allocations.map((a) => [a.ip, a.pod || "-", a.containerId.slice(0, 24), a.ifname, ago(a.allocated), a.leak ? paint("red", "leak") : ""])),
        ...(r.leaks ? ["", paint("red", `${r.leaks} leak candidate(s): twillctl ipam gc shows what would be released, --apply releases`)] : []),
      ].join("\n"),
    );
    return r.leaks ? EXIT.FINDINGS : EXIT.OK;
  },
};

const ipamGc: Command = {
  name: "ipam gc",
  args: "[--apply]",
  summary: "release leaked addresses (dry run unless --apply)",
  options: { apply: { type: "boolean" }, node: { type: "string" } },
  help: ["      --apply   release them (only over the local socket, as root)", NODE_HELP[0]! + " (dry run only)"],
  async run(p, format) {
    const r = await call<IpamGcReply>(await new Targets(p).one(p), "/ipam/gc", { method: "POST", body: { apply: !!p.values.apply } });
    emit(format, r, () =>
      [
        r.released.length ? table(["ip", "container", "ifname", "allocated"], r.released.map((a) => [a.ip, a.containerId.slice(0, 24), a.ifname, ago(a.allocated)])) : "no leaked addresses",
        r.released.length ? (r.apply ? `${r.released.length} address(es) released` : `dry run: ${r.released.length} address(es) would be released; run again with --apply`) : "",
        ...r.errors.map((e) => paint("red", e)),
      ].filter(Boolean).join("\n"),
    );
    return r.errors.length ? EXIT.DAEMON_ERROR : EXIT.OK;
  },
};

function diffCommand(name: "routes" | "peers", summary: string): Command {
  return {
    name,
    args: "[--node N | --all-nodes]",
    summary,
    options: NODE_OPTS,
    help: [...NODE_HELP, "", "Exit 1 when the kernel differs from what the daemon wants."],
    async run(p, format) {
      const rows = await new Targets(p).each<DiffReply>(p, `/${name}`);
      const replies = rows.flatMap((r) => (r.reply ? [r.reply] : []));
      emit(format, p.values["all-nodes"] ? rows.map((r) => r.reply ?? { node: r.node, error: r.error }) : replies[0], () => {
        const t = table(["node", "peer", "kind", "key", "wanted", "in kernel", "state"], replies.flatMap((r) => r.rows.map((x) => [r.node, x.peer || "-", x.kind, x.key, x.want || "-", x.have || "-", verdictColour(x.state)])));
        const n = replies.reduce((a, r) => a + r.differences, 0);
        return t + `\n\n${n ? paint("red", `${n} difference(s)`) : "kernel matches the desired state"}` + failedNodes(rows);
      });
      return worst(rows, replies.some((r) => r.differences > 0));
    },
  };
}

function pair(p: Parsed, usage: string): { src: string; dst: string; port: number; proto: string } {
  const [src, dst, pp, ...rest] = p.positionals;
  const portProto = pp ? parsePortProto(pp) : undefined;
  if (!src || !dst || !portProto || rest.length) throw new CtlError(EXIT.USAGE, `usage: twillctl ${usage}`);
  if (!src.includes("/")) throw new CtlError(EXIT.USAGE, `the source must be a pod (namespace/name), not ${src}`);
  return { src, dst, ...portProto };
}

const q = (x: { src: string; dst: string; port: number; proto: string }) => `src=${encodeURIComponent(x.src)}&dst=${encodeURIComponent(x.dst)}&port=${x.port}&proto=${x.proto}`;

/** The explanation, each direction's kernel check from the node that holds its pod (other nodes over HTTP). */
async function explainPair(t: Targets, x: { src: string; dst: string; port: number; proto: string }): Promise<ExplainReply> {
  const local = await call<ExplainReply>(t.local(), `/explain?${q(x)}`).catch(async (err: unknown) => {
    if ((err as CtlError).exit !== EXIT.UNREACHABLE) throw err;
    return call<ExplainReply>(await t.node(await t.apiserver().podNode(x.src)), `/explain?${q(x)}`);
  });
  for (const [i, d] of local.directions.entries()) {
    if (d.kernel || !d.node) continue;
    try {
      const other = await call<ExplainReply>(await t.node(d.node), `/explain?${q(x)}`);
      local.directions[i] = other.directions[i]!;
    } catch (err) {
      d.summary += ` (kernel not checked: ${(err as Error).message})`;
    }
  }
  return local;
}

function explainText(r: ExplainReply): string {
  const head = `${r.src} (${r.srcIp}) -> ${r.dst} (${r.dstIp}) ${r.port}/${r.proto}: ${verdictColour(r.verdict)}`;
  const body = r.directions.map((d) => {
    const lines = [`${paint("bold", d.direction.padEnd(7))} ${verdictColour(d.verdict)}  ${d.summary}`];
    for (const a of d.allowedBy) lines.push(`          rule: ${a.policy} ${d.direction}[${a.rule}] ${a.text}`);
    if (d.kernel) {
      const k = d.kernel;
      lines.push(`          kernel (${k.node}): chain ${k.chain}: ${k.rule}${k.element ? `; element ${k.element}` : ""}; ${k.packets} packets, ${k.bytes} bytes so far; ${k.agrees ? paint("green", "agrees") : paint("red", "DISAGREES with the compiler")}`);
    }
    return lines.join("\n");
  });
  return [head, ...body].join("\n");
}

const explain: Command = {
  name: "policy explain",
  args: "<ns/pod> <ns/pod|ip> <port>[/tcp|udp|sctp]",
  summary: "the verdict each way, the policies and rules that produce it, and the kernel's matching rule and element",
  options: {},
  help: ["  Computed by the daemon's own NetworkPolicy compiler, checked against the node's nft table.", "  Exit 1 when the connection is denied or the kernel disagrees.", "", "  twillctl policy explain default/web default/db 5432/tcp"],
  async run(p, format) {
    const x = pair(p, "policy explain <ns/pod> <ns/pod|ip> <port>/<proto>");
    const r = await explainPair(new Targets(p), x);
    emit(format, r, () => explainText(r));
    return r.verdict === "allow" && r.directions.every((d) => !d.kernel || d.kernel.agrees) ? EXIT.OK : EXIT.FINDINGS;
  },
};

const trace: Command = {
  name: "trace",
  args: "<ns/pod> <ns/pod|ip> <port>[/tcp|udp] [--observe SECONDS]",
  summary: "send one real probe from the source pod and show each nftables rule it met, on each node",
  options: { observe: { type: "string" } },
  help: [
    "      --observe S   send no probe: trace this connection's packets on both pods' nodes for S seconds (at most 5)",
    "                    while you make it yourself (kubectl exec … -- curl …); needs no access to the pod's namespace",
    "",
    "  Without --observe, run on the source pod's node: its daemon sends the probe from the pod's network namespace.",
    "  The destination pod's node is traced too when its daemon is reachable (kubeconfig + health port).",
    "  Exit 1 when the packet was dropped.",
    "",
    "  twillctl trace default/web default/db 5432/tcp",
  ],
  async run(p, format) {
    const x = pair(p, "trace <ns/pod> <ns/pod|ip> <port>/<proto>");
    const t = new Targets(p);
    const why = await explainPair(t, x).catch(() => undefined);
    const srcNode = why?.directions[0]?.node ?? undefined;
    const dstNode = why?.directions[1]?.node ?? undefined;
    const observeOn = (node: string, seconds: number) => t.node(node).then((target) => call<TraceReply>(target, "/trace", { method: "POST", body: { ...x, mode: "observe", seconds }, timeoutMs: (seconds + 10) * 1000 })).catch((err: Error) => err);
    let replies: (TraceReply | Error)[];
    let connected: boolean | undefined;
    if (p.values.observe !== undefined) {
      const seconds = Number(p.values.observe);
      if (!(seconds > 0 && seconds <= 5)) throw new CtlError(EXIT.USAGE, "--observe takes 1 to 5 seconds");
      const nodes = [...new Set([srcNode, dstNode].filter((n): n is string => !!n))];
      replies = await Promise.all(nodes.map((n) => observeOn(n, seconds)));
    } else {
      const observe = dstNode && dstNode !== srcNode ? observeOn(dstNode, 3) : undefined;
      if (observe) await new Promise((r) => setTimeout(r, 500));
      const probe = await call<TraceReply>(t.local(), "/trace", { method: "POST", body: { ...x, mode: "probe" }, timeoutMs: 15_000 });
      connected = probe.connected ?? false;
      replies = [probe, ...(observe ? [await observe] : [])];
    }
    const ok = replies.filter((r): r is TraceReply => !(r instanceof Error));
    const failed = replies.filter((r): r is Error => r instanceof Error);
    const dropped = ok.some((r) => r.decision && /^drop|^reject/.test(r.decision.verdict));
    const out = { probe: { ...x, ...(connected === undefined ? {} : { connected }) }, verdict: why?.verdict ?? null, nodes: ok, ...(failed.length ? { errors: failed.map((e) => e.message) } : {}) };
    emit(format, out, () =>
      [
        connected === undefined ? `observed ${x.src} -> ${x.dst} ${x.port}/${x.proto}` : `probe ${x.src} -> ${x.dst} ${x.port}/${x.proto}: ${connected ? paint("green", "connected") : paint("red", "no connection")}${why ? ` (policy explain says ${verdictColour(why.verdict)})` : ""}`,
        table(["node", "table", "chain", "rule", "verdict"], ok.flatMap((r) => r.steps.map((s) => [s.node, s.table, s.chain, s.rule, verdictColour(s.verdict.split(" ")[0]!) + s.verdict.slice(s.verdict.split(" ")[0]!.length)]))),
        ...ok.map((r) => (r.decision ? `${r.node}: decided by ${r.decision.table} ${r.decision.chain}: ${r.decision.rule} (${verdictColour(r.decision.verdict)}); ${r.packets} packet(s) traced` : `${r.node}: no traced packet`)),
        ...failed.map((e) => paint("yellow", `not traced: ${e.message}`)),
      ].join("\n"),
    );
    return dropped ? EXIT.FINDINGS : EXIT.OK;
  },
};

const dropRow = (e: DropEvent) => [e.time.slice(11, 23), e.node, e.direction, e.pod, e.src, e.dst, `${e.port ?? "-"}/${e.proto}`, e.isolatedBy.join(",") || "-"];
const DROP_HEAD = ["time", "node", "side", "pod", "src", "dst", "port", "isolated by"];

const drops: Command = {
  name: "drops",
  args: "[ns/pod] [--follow] [--node N | --all-nodes]",
  summary: "packets NetworkPolicy dropped: totals per pod and direction, and the recent ones (rate-limited log)",
  options: { ...NODE_OPTS, follow: { type: "boolean", short: "f" } },
  help: [...NODE_HELP, "  -f, --follow      print drops as they happen (one node), until interrupted"],
  async run(p, format) {
    const pod = p.positionals[0];
    const t = new Targets(p);
    const qs = pod ? `?pod=${encodeURIComponent(pod)}` : "";
    if (p.values.follow) {
      if (format === "table") writeOut(table(DROP_HEAD, []) + "\n");
      await call(await t.one(p), `/drops${qs}${qs ? "&" : "?"}follow=1`, {
        timeoutMs: 0,
        onLine: (line) => {
          const e = JSON.parse(line) as DropEvent;
          writeOut(format === "table" ? table([], [dropRow(e)]).replace(/^\n/, "") + "\n" : JSON.stringify(e) + "\n");
        },
      });
      return EXIT.OK;
    }
    const rows = await t.each<DropsReply>(p, `/drops${qs}`);
    const replies = rows.flatMap((r) => (r.reply ? [r.reply] : []));
    emit(format, p.values["all-nodes"] ? rows.map((r) => r.reply ?? { node: r.node, error: r.error }) : replies[0], () =>
      [
        table(["node", "pod", "side", "dropped packets", "bytes"], replies.flatMap((r) => r.totals.map((c) => [r.node, c.pod, c.direction, c.packets, c.bytes]))),
        "",
        "Recent drops (the log is rate-limited: 50/s per direction and node):",
        table(DROP_HEAD, replies.flatMap((r) => r.recent.slice(-50).map(dropRow))),
      ].join("\n") + failedNodes(rows),
    );
    return worst(rows, false);
  },
};

export const COMMANDS: Command[] = [status, ipam, ipamGc, diffCommand("routes", "Twill's routes: wanted against the kernel, with the differences"), diffCommand("peers", "each peer node's route (and VXLAN neighbour and FDB entries): wanted against the kernel"), explain, trace, drops];
