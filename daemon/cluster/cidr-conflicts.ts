import { lastAddress, parseCidr, type Family } from "../../lib/net/cidr.ts";
import type { PeerLeftOut } from "../kernel/desired.ts";
import type { ClusterView } from "./view.ts";

// Two nodes whose pod CIDRs overlap would each get a route for the same
// addresses: with equal prefixes the routes replace each other on every pass,
// with nested ones part of one node's pods go to the other. kube-controller-
// manager never assigns such CIDRs; a hand-edited Node can. The first claimant
// keeps its CIDRs (this node always, then peers by name, so every node picks the
// same), and the others are left out, named.

interface Claim {
  node: string;
  rank: number;
  cidr: string;
  family: Family;
  start: bigint;
  end: bigint;
}

/** Parsed ranges by CIDR text: a pass at 5,000 nodes parsed them all again (15–60 ms), yet they rarely change. */
const ranges = new Map<string, { family: Family; start: bigint; end: bigint }>();
function range(cidr: string): { family: Family; start: bigint; end: bigint } {
  let r = ranges.get(cidr);
  if (!r) {
    if (ranges.size >= 100_000) ranges.clear(); // bounded, whatever the churn
    const c = parseCidr(cidr);
    r = { family: c.family, start: c.network, end: lastAddress(c) };
    ranges.set(cidr, r);
  }
  return r;
}

/** The view without peers whose pod CIDRs overlap this node's or an earlier peer's, and those peers with the reason. */
export function withoutCidrConflicts(view: ClusterView, localName: string): { view: ClusterView; leftOut: PeerLeftOut[] } {
  const order = [...view.nodes.keys()].sort((a, b) => (a === localName ? -1 : b === localName ? 1 : a.localeCompare(b)));
  const claims: Claim[] = [];
  order.forEach((node, rank) => {
    for (const cidr of view.nodes.get(node)!.podCIDRs) claims.push({ node, rank, cidr, ...range(cidr) });
  });
  // Sweep by start address: only claims in one run of overlapping ranges can clash, and such runs are rare.
  claims.sort((a, b) => a.family - b.family || (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const clashes = new Map<string, { cidr: string; with: Claim }>();
  for (let i = 0; i < claims.length; ) {
    let j = i + 1;
    let end = claims[i]!.end;
    while (j < claims.length && claims[j]!.family === claims[i]!.family && claims[j]!.start <= end) {
      if (claims[j]!.end > end) end = claims[j]!.end;
      j++;
    }
    if (j - i > 1) resolve(claims.slice(i, j), clashes);
    i = j;
  }
  if (clashes.size === 0) return { view, leftOut: [] };
  const nodes = new Map([...view.nodes].filter(([name]) => !clashes.has(name)));
  const leftOut = [...clashes].map(([node, c]) => ({
    node,
    code: "POD_CIDR_CONFLICT",
    reason: `node ${node}'s pod CIDR ${c.cidr} overlaps ${c.with.node === localName ? "this node's own" : `node ${c.with.node}'s`} ${c.with.cidr}; its pods stay unreachable until one of the two Node objects gets a pod CIDR of its own (spec.podCIDR is set once: delete and re-register the node)`,
  }));
  return { view: { ...view, nodes }, leftOut };
}

/** Within one run of overlapping claims: the best-ranked keep theirs; a claim overlapping a kept one of another node loses its node. */
function resolve(run: Claim[], clashes: Map<string, { cidr: string; with: Claim }>): void {
  const kept: Claim[] = [];
  for (const c of run.sort((a, b) => a.rank - b.rank)) {
    if (clashes.has(c.node)) continue;
    const hit = kept.find((k) => k.node !== c.node && k.start <= c.end && c.start <= k.end);
    if (hit) clashes.set(c.node, { cidr: c.cidr, with: hit });
    else kept.push(c);
  }
}
