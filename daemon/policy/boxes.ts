// Sets of (address, protocol, port) triples as boxes of inclusive ranges, and
// their decomposition into disjoint boxes: an nftables interval set over a
// concatenation rejects overlapping elements ("File exists", measured with
// nft 1.0.6), so the union of a pod's rules must be written as boxes that do
// not overlap.

export interface Box {
  addr: [bigint, bigint];
  proto: [number, number];
  port: [number, number];
}

type Range = [number, number];

function mergeIntervals(list: [bigint, bigint][]): [bigint, bigint][] {
  const sorted = [...list].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) {
      if (hi > last[1]) last[1] = hi;
    } else {
      out.push([lo, hi]);
    }
  }
  return out;
}

/** Elementary segments of [min, max] cut at every box edge. */
function segments(edges: Range[]): Range[] {
  const cuts = new Set<number>();
  for (const [lo, hi] of edges) {
    cuts.add(lo);
    cuts.add(hi + 1);
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  const out: Range[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) out.push([sorted[i]!, sorted[i + 1]! - 1]);
  return out;
}

const key = (ivs: [bigint, bigint][]) => ivs.map(([a, b]) => `${a}-${b}`).join(",");

/** The same union of points as `boxes`, as boxes that pairwise do not overlap. */
export function disjoint(boxes: Box[]): Box[] {
  if (boxes.length === 0) return [];
  const out: Box[] = [];
  // Per protocol segment, per port segment: the merged address intervals covering it.
  let prev: { proto: Range; rows: { port: Range; ivs: [bigint, bigint][] }[]; sig: string } | undefined;
  const flush = () => {
    if (!prev) return;
    for (const r of prev.rows) for (const iv of r.ivs) out.push({ addr: iv, proto: prev.proto, port: r.port });
  };
  for (const proto of segments(boxes.map((b) => b.proto))) {
    const inProto = boxes.filter((b) => b.proto[0] <= proto[0] && proto[1] <= b.proto[1]);
    const rows: { port: Range; ivs: [bigint, bigint][] }[] = [];
    if (inProto.length > 0) {
      for (const port of segments(inProto.map((b) => b.port))) {
        const covering = inProto.filter((b) => b.port[0] <= port[0] && port[1] <= b.port[1]);
        if (covering.length === 0) continue;
        const ivs = mergeIntervals(covering.map((b) => b.addr));
        const last = rows[rows.length - 1];
        // Neighbouring port segments with the same addresses become one range.
        if (last && last.port[1] + 1 === port[0] && key(last.ivs) === key(ivs)) last.port = [last.port[0], port[1]];
        else rows.push({ port, ivs });
      }
    }
    const sig = rows.map((r) => `${r.port[0]}-${r.port[1]}:${key(r.ivs)}`).join(";");
    // Neighbouring protocol segments with the same rows become one range.
    if (prev && prev.proto[1] + 1 === proto[0] && prev.sig === sig && sig !== "") {
      prev.proto = [prev.proto[0], proto[1]];
      continue;
    }
    flush();
    prev = { proto, rows, sig };
  }
  flush();
  return out;
}

/** Does any box contain the point? (The tests' cross-check of a decomposition.) */
export function contains(boxes: Box[], addr: bigint, proto: number, port: number): boolean {
  return boxes.some((b) => b.addr[0] <= addr && addr <= b.addr[1] && b.proto[0] <= proto && proto <= b.proto[1] && b.port[0] <= port && port <= b.port[1]);
}
