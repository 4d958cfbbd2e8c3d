import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { contains, disjoint, type Box } from "../../daemon/policy/boxes.ts";
import { compileNode, describeNode, diffTransaction, renderDescription, replaceDescription } from "../../daemon/policy/compile.ts";
import type { ClusterState } from "../../daemon/policy/model.ts";

const overlaps = (a: Box, b: Box) =>
  a.addr[0] <= b.addr[1] && b.addr[0] <= a.addr[1] && a.proto[0] <= b.proto[1] && b.proto[0] <= a.proto[1] && a.port[0] <= b.port[1] && b.port[0] <= a.port[1];

const range = (max: number) => fc.tuple(fc.integer({ min: 0, max }), fc.integer({ min: 0, max })).map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a]));
const box = fc.record({
  addr: range(40).map(([a, b]): [bigint, bigint] => [BigInt(a), BigInt(b)]),
  proto: range(8),
  port: range(30),
});

describe("disjoint decomposition (nft interval sets reject overlapping elements)", () => {
  it("covers exactly the same points with boxes that do not overlap", () => {
    fc.assert(
      fc.property(fc.array(box, { maxLength: 8 }), (boxes) => {
        const out = disjoint(boxes);
        for (let i = 0; i < out.length; i++) for (let j = i + 1; j < out.length; j++) expect(overlaps(out[i]!, out[j]!)).toBe(false);
        for (let a = 0; a <= 41; a += 3) for (let p = 0; p <= 9; p++) for (let t = 0; t <= 31; t += 2) {
          expect(contains(out, BigInt(a), p, t)).toBe(contains(boxes, BigInt(a), p, t));
        }
      }),
      { numRuns: 150 },
    );
  });

  it("merges what can be merged: one rule for all ports of two adjacent protocols stays one box", () => {
    expect(disjoint([{ addr: [0n, 9n], proto: [6, 6], port: [0, 65535] }, { addr: [0n, 9n], proto: [7, 7], port: [0, 65535] }])).toEqual([{ addr: [0n, 9n], proto: [6, 7], port: [0, 65535] }]);
  });
});

const pod = (name: string, ip: string, labels: Record<string, string>): V1Pod => ({ metadata: { name, namespace: "x", labels }, status: { podIP: ip } });
const deny = (name: string, sel: Record<string, string>): V1NetworkPolicy => ({ metadata: { name, namespace: "x" }, spec: { podSelector: { matchLabels: sel }, policyTypes: ["Ingress"] } });
const allowFrom = (name: string, sel: Record<string, string>, from: Record<string, string>): V1NetworkPolicy => ({
  metadata: { name, namespace: "x" },
  spec: { podSelector: { matchLabels: sel }, ingress: [{ _from: [{ podSelector: { matchLabels: from } }], ports: [{ port: 80 }] }] },
});
function describe3(policies: V1NetworkPolicy[], labels: Record<string, string> = { app: "web" }) {
  const state: ClusterState = {
    namespaces: [{ metadata: { name: "x" } }],
    pods: [pod("a", "10.1.0.1", { app: "web" }), pod("b", "10.1.0.5", labels), pod("c", "10.1.0.3", { app: "db" })],
    policies,
  };
  return describeNode(compileNode(state, state.pods), { failClosed: { podCidr: "10.1.0.0/24", ready: ["10.1.0.1", "10.1.0.5", "10.1.0.3"] } });
}

describe("table description and diff", () => {
  it("renders sets and maps before the chains that use them, and a replace is one transaction", () => {
    const d = describe3([deny("d", { app: "web" })]);
    const text = renderDescription(d);
    expect(text.indexOf("map ingress")).toBeLessThan(text.indexOf("chain forward"));
    expect(text).toContain("10.1.0.1 : jump in-10_1_0_1");
    expect(replaceDescription(d).split("\n").slice(0, 2)).toEqual(["table inet twill-policy", "delete table inet twill-policy"]);
  });

  it("an unchanged cluster needs no transaction", () => {
    expect(diffTransaction(describe3([deny("d", { app: "web" })]), describe3([deny("d", { app: "web" })]))).toBe("");
  });

  it("a label change that isolates one more pod adds its chain and map element, and touches nothing else", () => {
    const tx = diffTransaction(describe3([deny("d", { app: "web" })], { app: "other" }), describe3([deny("d", { app: "web" })]));
    expect(tx.trim().split("\n")).toEqual([
      "add chain inet twill-policy in-10_1_0_5",
      "add element inet twill-policy ingress { 10.1.0.5 : jump in-10_1_0_5 }",
      "add rule inet twill-policy in-10_1_0_5 counter goto drop-ingress",
    ]);
  });

  it("a peer pod joining a rule is one set element, not a chain rewrite", () => {
    const before = describe3([allowFrom("p", { app: "db" }, { app: "web" })], { app: "other" });
    const after = describe3([allowFrom("p", { app: "db" }, { app: "web" })]);
    const tx = diffTransaction(before, after);
    expect(tx).not.toMatch(/chain|table inet|delete/);
    expect(tx.trim()).toBe("add element inet twill-policy in-10_1_0_3 { 10.1.0.5 . 6 . 80 }");
  });

  it("removing the last policy deletes map elements before the chains and sets they name", () => {
    const tx = diffTransaction(describe3([allowFrom("p", { app: "db" }, { app: "web" })]), describe3([])).trim().split("\n");
    const at = (re: RegExp) => tx.findIndex((l) => re.test(l));
    expect(at(/^delete element inet twill-policy ingress/)).toBeGreaterThanOrEqual(0);
    expect(at(/^delete element inet twill-policy ingress/)).toBeLessThan(at(/^delete chain inet twill-policy in-10_1_0_3$/));
    expect(at(/^flush chain inet twill-policy in-10_1_0_3$/)).toBeLessThan(at(/^delete set inet twill-policy in-10_1_0_3$/));
    expect(tx.some((l) => /forward/.test(l))).toBe(false);
  });
});
