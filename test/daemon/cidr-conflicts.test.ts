import { describe, expect, it } from "vitest";
import { withoutCidrConflicts } from "../../daemon/cluster/cidr-conflicts.ts";
import type { ClusterView, NodeInfo } from "../../daemon/cluster/view.ts";

const node = (name: string, ...podCIDRs: string[]): NodeInfo => ({ name, podCIDRs, ip: "172.30.0.1", annotations: {} });
const viewOf = (...nodes: NodeInfo[]): ClusterView => ({ nodes: new Map(nodes.map((n) => [n.name, n])), skipped: new Map() });

describe("pod CIDR conflicts", () => {
  it("two peers with one pod CIDR: the first by name keeps it, the other is left out naming it", () => {
    const r = withoutCidrConflicts(viewOf(node("m", "10.244.1.0/24"), node("b", "10.244.2.0/24"), node("c", "10.244.2.0/24"), node("d", "10.244.3.0/24")), "m");
    expect([...r.view.nodes.keys()].sort()).toEqual(["b", "d", "m"]);
    expect(r.leftOut).toEqual([{ node: "c", code: "POD_CIDR_CONFLICT", reason: expect.stringContaining("10.244.2.0/24 overlaps node b's 10.244.2.0/24") }]);
  });

  it("this node's own CIDR always wins, whatever the names; nested CIDRs count as overlapping", () => {
    const r = withoutCidrConflicts(viewOf(node("z", "10.244.9.0/24"), node("a", "10.244.0.0/16"), node("b", "10.244.9.128/25")), "z");
    expect([...r.view.nodes.keys()]).toEqual(["z"]);
    expect(r.leftOut.map((l) => [l.node, l.reason.includes("this node's own 10.244.9.0/24")])).toEqual([
      ["a", true],
      ["b", true],
    ]);
  });

  it("a wide CIDR that overlaps two peers loses to both, and they keep theirs; families never clash", () => {
    const r = withoutCidrConflicts(viewOf(node("m", "10.244.1.0/24", "fd00:1::/64"), node("a", "10.244.2.0/24"), node("b", "10.244.3.0/24"), node("w", "10.244.2.0/23"), node("v6", "10.244.4.0/24", "fd00:2::/64")), "m");
    expect([...r.view.nodes.keys()].sort()).toEqual(["a", "b", "m", "v6"]);
    expect(r.leftOut.map((l) => l.node)).toEqual(["w"]);
  });

  it("without conflicts the view is returned as it is", () => {
    const v = viewOf(node("m", "10.244.1.0/24"), node("a", "10.244.2.0/24"));
    expect(withoutCidrConflicts(v, "m")).toEqual({ view: v, leftOut: [] });
    expect(withoutCidrConflicts(v, "m").view).toBe(v);
  });
});
