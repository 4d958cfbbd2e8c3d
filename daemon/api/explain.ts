import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort, V1Pod } from "@kubernetes/client-node";
import { TwillError } from "../../lib/errors.ts";
import type { DirectionVerdict, ExplainReply, ExplainRequest, KernelMatch, RuleRef } from "../../lib/ctl-api.ts";
import { parseIp } from "../../lib/net/cidr.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { compilePod, PROTO_NUM, rulePeers, scanResolver, TABLE } from "../policy/compile.ts";
import { peerMatches, portMatches, selectingPolicies, type ClusterState, type Endpoint, type Protocol } from "../policy/model.ts";
import type { ApiContext } from "./context.ts";

// `twillctl policy explain`: the verdict for one connection in each direction,
// from the compiler the daemon programs (compile.ts: the pod's boxes), the
// rules that produce it (each selecting policy's rules checked one by one),
// and, for the pods of this node, the kernel's own answer: the dispatch map's
// jump, the set element that contains the packet, the deciding rule and its
// counters.

const nsName = (p: V1Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;
const policyName = (p: V1NetworkPolicy) => `${p.metadata?.namespace}/${p.metadata?.name}`;

/** `ns/pod` or an address, resolved against the cluster (an address of a pod is that pod). */
export function resolveEndpoint(state: ClusterState, text: string): Endpoint {
  if (text.includes("/")) {
    const [ns, name] = text.split("/", 2);
    const pod = state.pods.find((p) => p.metadata?.namespace === ns && p.metadata?.name === name);
    if (!pod) throw new TwillError("NOT_FOUND", `no pod ${text} in the daemon's view of the cluster`);
    if (!pod.status?.podIP) throw new TwillError("NOT_FOUND", `pod ${text} has no address yet`);
    return { pod };
  }
  try {
    parseIp(text);
  } catch {
    throw new TwillError("BAD_REQUEST", `"${text}" is neither namespace/pod nor an IP address`);
  }
  const pod = state.pods.find((p) => p.status?.podIP === text || (p.status?.podIPs ?? []).some((x) => x.ip === text));
  return pod ? { pod } : { ip: text };
}

const ipOf = (e: Endpoint) => ("pod" in e ? e.pod.status!.podIP! : e.ip);
const labelOf = (e: Endpoint) => ("pod" in e ? nsName(e.pod) : e.ip);

/** A label selector as kubectl writes one: `a=b,c in (x,y),!d`; empty: everything. */
function selectorText(sel: V1LabelSelector): string {
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    const values = (e.values ?? []).join(",");
    parts.push(e.operator === "In" ? `${e.key} in (${values})` : e.operator === "NotIn" ? `${e.key} notin (${values})` : e.operator === "Exists" ? e.key : e.operator === "DoesNotExist" ? `!${e.key}` : `${e.key} ${e.operator}`);
  }
  return parts.join(",") || "all";
}

function peerText(p: V1NetworkPolicyPeer): string {
  if (p.ipBlock) return `ipBlock ${p.ipBlock.cidr}${p.ipBlock.except?.length ? ` except ${p.ipBlock.except.join(",")}` : ""}`;
  const ns = p.namespaceSelector ? `namespaces ${selectorText(p.namespaceSelector)}` : "";
  const pods = p.podSelector ? `pods ${selectorText(p.podSelector)}` : "";
  return [ns, pods].filter(Boolean).join(" / ") || "nothing";
}

function ruleText(r: { ports?: V1NetworkPolicyPort[] }, peers: V1NetworkPolicyPeer[] | undefined, dir: "Ingress" | "Egress"): string {
  const who = peers?.length ? peers.map(peerText).join("; ") : "anyone";
  const ports = r.ports?.length ? r.ports.map((p) => `${p.port ?? "*"}${p.endPort ? `-${p.endPort}` : ""}/${p.protocol ?? "TCP"}`).join(",") : "any port";
  return `${dir === "Ingress" ? "from" : "to"} ${who} on ${ports}`;
}

/** Rules of the selecting policies that admit the connection (the model's reading of each rule). */
function admittingRules(state: ClusterState, policies: V1NetworkPolicy[], dir: "Ingress" | "Egress", peer: Endpoint, dst: Endpoint, port: number, proto: Protocol): RuleRef[] {
  const out: RuleRef[] = [];
  for (const p of policies) {
    const rules = (dir === "Ingress" ? p.spec?.ingress : p.spec?.egress) ?? [];
    rules.forEach((r, i) => {
      const peers = rulePeers(r, dir);
      const portsOk = !r.ports?.length || r.ports.some((e) => portMatches(e, dst, port, proto));
      const peersOk = !peers?.length || peers.some((x) => peerMatches(state, x, p.metadata?.namespace ?? "default", peer));
      if (portsOk && peersOk) out.push({ policy: policyName(p), rule: i, text: ruleText(r, peers, dir) });
    });
  }
  return out;
}

async function nft(ctx: ApiContext, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await exec([...ctx.nft, ...args], { allowFailure: true });
  return { ok: r.code === 0, out: r.stdout };
}

interface ListedRule {
  text: string;
  packets: number;
  bytes: number;
}

/** A chain's rules as nft prints them, with their counters. */
export async function chainRules(ctx: ApiContext, chain: string): Promise<ListedRule[]> {
  const r = await nft(ctx, ["list", "chain", "inet", TABLE, chain]);
  if (!r.ok) return [];
  return r.out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("table ") && !l.startsWith("chain ") && l !== "}")
    .map((text) => {
      const m = /counter packets (\d+) bytes (\d+)/.exec(text);
      return { text, packets: m ? Number(m[1]) : 0, bytes: m ? Number(m[2]) : 0 };
    });
}

/** The kernel's side of one direction for a pod of this node. */
async function kernelMatch(ctx: ApiContext, dir: "ingress" | "egress", podIp: string, peerIp: string, port: number, proto: Protocol, allowed: boolean, isolated: boolean): Promise<KernelMatch> {
  const id = podIp.replaceAll(".", "_");
  const chain = `${dir === "ingress" ? "in" : "eg"}-${id}`;
  const base = { node: ctx.nodeName, chain, element: null, packets: 0, bytes: 0 };
  const jump = await nft(ctx, ["get", "element", "inet", TABLE, dir, `{ ${podIp} }`]);
  if (!jump.ok) {
    // Not in the dispatch map: the kernel does not isolate the pod in this direction.
    return { ...base, chain: "forward", rule: `ip ${dir === "ingress" ? "daddr" : "saddr"} vmap @${dir} (no element for ${podIp}: not isolated)`, agrees: !isolated };
  }
  const rules = await chainRules(ctx, chain);
  const key = `{ ${peerIp} . ${PROTO_NUM[proto]} . ${port} }`;
  const el = await nft(ctx, ["get", "element", "inet", TABLE, chain, key]);
  const element = el.ok ? (/elements = \{ (.*) \}/.exec(el.out)?.[1] ?? null) : null;
  const decided = element ? rules.find((r) => r.text.includes(`@${chain}`)) : rules[rules.length - 1];
  return { ...base, element, rule: decided?.text ?? "(chain missing)", packets: decided?.packets ?? 0, bytes: decided?.bytes ?? 0, agrees: isolated && !!decided && !!element === allowed };
}

function inBoxes(boxes: { addr: [bigint, bigint]; proto: [number, number]; port: [number, number] }[], ip: string, proto: number, port: number): boolean {
  const v = parseIp(ip).value;
  return boxes.some((b) => b.addr[0] <= v && v <= b.addr[1] && b.proto[0] <= proto && proto <= b.proto[1] && b.port[0] <= port && port <= b.port[1]);
}

async function direction(ctx: ApiContext, state: ClusterState, dir: "egress" | "ingress", src: Endpoint, dst: Endpoint, port: number, proto: Protocol): Promise<DirectionVerdict> {
  const side = dir === "egress" ? src : dst;
  const peer = dir === "egress" ? dst : src;
  if (!("pod" in side)) {
    return { direction: dir, pod: null, node: null, verdict: "allow", isolated: false, isolatedBy: [], allowedBy: [], kernel: null, summary: `${side.ip} is not a pod: NetworkPolicy has no ${dir} side there` };
  }
  const pod = side.pod;
  const node = pod.spec?.nodeName ?? null;
  const policies = selectingPolicies(state, pod, dir === "egress" ? "Egress" : "Ingress");
  const rules = compilePod(scanResolver(state), pod);
  const boxes = rules?.[dir];
  const allowed = boxes ? inBoxes(boxes, ipOf(peer), PROTO_NUM[proto], port) : true;
  const allowedBy = policies.length ? admittingRules(state, policies, dir === "egress" ? "Egress" : "Ingress", peer, dst, port, proto) : [];
  const kernel = node === ctx.nodeName && !pod.status?.podIP?.includes(":") ? await kernelMatch(ctx, dir, ipOf(side), ipOf(peer), port, proto, allowed, !!boxes) : null;
  const name = nsName(pod);
  const summary = !boxes
    ? `no policy isolates ${name} for ${dir}`
    : allowed
      ? `${name} ${dir} allowed by ${allowedBy.map((r) => `${r.policy} rule ${r.rule}`).join(", ") || "the compiled rules"}`
      : `${name} is isolated for ${dir} by ${policies.map(policyName).join(", ")} and no rule admits ${labelOf(peer)} on ${port}/${proto}`;
  return { direction: dir, pod: name, node, verdict: allowed ? "allow" : "deny", isolated: !!boxes, isolatedBy: policies.map(policyName), allowedBy, kernel, summary };
}

export async function explain(ctx: ApiContext, req: ExplainRequest): Promise<ExplainReply> {
  const state = ctx.policy?.inputs();
  if (!ctx.policy) throw new TwillError("POLICY_OFF", "NetworkPolicy is off on this node (policy: false in the twill-config ConfigMap): every connection is allowed");
  if (!state) throw new TwillError("NOT_SYNCED", "the daemon has not listed pods, namespaces and policies yet; try again in a moment");
  const proto = req.proto.toUpperCase() as Protocol;
  if (!(proto in PROTO_NUM)) throw new TwillError("BAD_REQUEST", `unknown protocol ${req.proto}`);
  const src = resolveEndpoint(state, req.src);
  const dst = resolveEndpoint(state, req.dst);
  const directions = [await direction(ctx, state, "egress", src, dst, req.port, proto), await direction(ctx, state, "ingress", src, dst, req.port, proto)];
  return { src: labelOf(src), dst: labelOf(dst), srcIp: ipOf(src), dstIp: ipOf(dst), port: req.port, proto: req.proto, verdict: directions.every((d) => d.verdict === "allow") ? "allow" : "deny", directions };
}
