import { describe, expect, it } from "vitest";
import { parseSelector } from "../../daemon/backends/bgp/selector.ts";

// BGPPeer.spec.nodeSelector in kubectl's label selector syntax.

describe("node selector", () => {
  const l = { rack: "r1", zone: "a", "topology.kubernetes.io/region": "eu" };
  it.each([
    ["", true],
    ["rack=r1", true],
    ["rack==r1", true],
    ["rack!=r1", false],
    ["rack=r2", false],
    ["rack", true],
    ["!rack", false],
    ["!gpu", true],
    ["rack in (r1, r2)", true],
    ["rack notin (r1,r2)", false],
    ["gpu notin (yes)", true],
    ["rack=r1,zone=a", true],
    ["rack=r1, zone=b", false],
    ["topology.kubernetes.io/region in (eu,us),rack", true],
  ])("%j selects %s", (sel, want) => {
    expect(parseSelector(sel)(l)).toBe(want);
  });
  it.each(["rack in (r1", "=r1", "rack=r 1", "rack=(x)"])("%j is rejected with BGP_PEER_INVALID", (sel) => {
    expect(() => parseSelector(sel)).toThrow(expect.objectContaining({ code: "BGP_PEER_INVALID" }));
  });
});
