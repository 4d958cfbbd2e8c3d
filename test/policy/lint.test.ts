import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { compileNode } from "../../daemon/policy/compile.ts";
import { lintPolicy } from "../../daemon/policy/lint.ts";
import { connectionAllowed, type ClusterState } from "../../daemon/policy/model.ts";

// Odd policy input: reported once in words (the controller logs each finding
// once), and compiled by the spec without throwing.

const pol = (ingress: unknown[]): V1NetworkPolicy => ({ metadata: { name: "odd", namespace: "x" }, spec: { podSelector: {}, ingress } as never });

describe("odd NetworkPolicy input", () => {
  it("names what Twill cannot enforce or what matches nothing", () => {
    expect(lintPolicy(pol([{ from: [{ ipBlock: { cidr: "fd00::/64" } }] }]))).toEqual(["ipBlock fd00::/64 is IPv6: Twill enforces IPv4 NetworkPolicy only so far, so it has no effect"]);
    expect(lintPolicy(pol([{ from: [{ ipBlock: { cidr: "10.0.0.0/33" } }] }]))[0]).toContain("is not a CIDR: it selects nothing");
    expect(lintPolicy(pol([{ ports: [{ protocol: "ICMP", port: 1 }] }]))[0]).toContain("protocol ICMP is not TCP, UDP or SCTP");
    expect(lintPolicy(pol([{ ports: [{ port: 90, endPort: 80 }] }]))[0]).toContain("endPort 80");
    expect(lintPolicy(pol([{ from: [{ podSelector: {} }], ports: [{ port: 80 }] }]))).toEqual([]);
  });

  it("compiles it as matching nothing, like the model, without throwing", () => {
    const pods = [0, 1].map((i) => ({ metadata: { name: `p${i}`, namespace: "x", labels: {} }, spec: { containers: [] }, status: { podIP: `10.0.0.${i + 1}` } }));
    const state: ClusterState = {
      namespaces: [{ metadata: { name: "x" } }],
      pods,
      policies: [pol([{ from: [{ ipBlock: { cidr: "10.0.0.0/33" } }] }, { ports: [{ protocol: "ICMP", port: 80 }] }, { ports: [{ port: 90, endPort: 80 }] }])],
    };
    const rules = compileNode(state, pods);
    expect(rules.map((r) => r.ingress)).toEqual([[], []]);
    for (const port of [80, 85, 90]) expect(connectionAllowed(state, { pod: pods[0]! }, { pod: pods[1]! }, port, "TCP")).toBe(false);
  });
});
