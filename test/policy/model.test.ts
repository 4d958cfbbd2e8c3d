import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { connectionAllowed, policyTypes, selectorMatches, type ClusterState } from "../../daemon/policy/model.ts";
import { applyToState, loadCases, loadModel, modelObjects, type Action, type Probe } from "../../lab/netpol/corpus.ts";

// Every case of Twill's own conformance cases (test/policy/netpol/, whose
// expectations come from a separate oracle) through the pure semantic model:
// every probe of every step must match (loopback cells are not scored, as
// upstream does not score them).

const model = loadModel();
// Addresses for the pure run: one /24 per namespace, all inside one /8 as the
// cases' {{podNet}} templates assume.
const podIp = (key: string) => {
  const [ns, pod] = key.split("/") as [string, string];
  const inNs = model.pods.filter((p) => p.namespace === ns);
  return `10.244.${model.namespaces.findIndex((n) => n.name === ns) + 1}.${inNs.findIndex((p) => p.name === pod) + 11}`;
};

const applyAction = (state: ClusterState, a: Action) => applyToState(state, a, podIp);

const pod = (state: ClusterState, key: string) => state.pods.find((p) => `${p.metadata?.namespace}/${p.metadata?.name}` === key)!;

function mismatches(state: ClusterState, probes: Probe[]): string[] {
  return probes
    .filter((p) => !p.loopback)
    .filter((p) => connectionAllowed(state, { pod: pod(state, p.from) }, { pod: pod(state, p.to) }, p.port, p.protocol) !== p.expect)
    .map((p) => `${p.from} -> ${p.to} ${p.protocol}/${p.port}: expected ${p.expect}`);
}

describe("NetworkPolicy semantics: Twill's conformance cases through the model", () => {
  for (const c of loadCases()) {
    it(c.name, () => {
      const state: ClusterState = { ...modelObjects(model, podIp), policies: [] };
      for (const p of c.policies) applyAction(state, { action: "apply", policy: p });
      const bad = mismatches(state, c.probes);
      for (const step of c.steps ?? []) {
        for (const a of step.actions) applyAction(state, a);
        bad.push(...mismatches(state, step.probes).map((m) => `[${step.description}] ${m}`));
      }
      expect(bad).toEqual([]);
    });
  }
});

describe("semantics the cases do not reach", () => {
  it("NotIn and DoesNotExist match objects that lack the key; In and Exists need it", () => {
    expect(selectorMatches({ matchExpressions: [{ key: "k", operator: "NotIn", values: ["v"] }] }, {})).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "k", operator: "DoesNotExist" }] }, {})).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "k", operator: "In", values: ["v"] }] }, {})).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "k", operator: "Exists" }] }, { k: "" })).toBe(true);
  });

  it("policyTypes defaults: egress rules add Egress; an empty egress list does not", () => {
    const p = (spec: object) => ({ spec: { podSelector: {}, ...spec } }) as V1NetworkPolicy;
    expect(policyTypes(p({ egress: [{}] }))).toEqual(["Ingress", "Egress"]);
    expect(policyTypes(p({ egress: [] }))).toEqual(["Ingress"]);
    expect(policyTypes(p({ policyTypes: ["Egress"], ingress: [{}] }))).toEqual(["Egress"]);
  });

  it("endPort makes an inclusive range; a named port must agree in name, number and protocol", () => {
    const state: ClusterState = { ...modelObjects(model, podIp), policies: [] };
    const a = pod(state, "alpha/web");
    const b = pod(state, "alpha/api");
    // "echo" is alpha/api's UDP 81: asked for as TCP it names nothing.
    state.policies.push({ metadata: { name: "r", namespace: "alpha" }, spec: { podSelector: { matchLabels: { app: "api" } }, ingress: [{ ports: [{ port: 79, endPort: 80 }, { port: "echo", protocol: "TCP" }] }] } } as V1NetworkPolicy);
    expect(connectionAllowed(state, { pod: a }, { pod: b }, 80, "TCP")).toBe(true);
    expect(connectionAllowed(state, { pod: a }, { pod: b }, 81, "TCP")).toBe(false);
    expect(connectionAllowed(state, { pod: a }, { pod: b }, 80, "UDP")).toBe(false);
  });

  it("an address outside the pods is matched only by ipBlock peers, with except carving out", () => {
    const state: ClusterState = { ...modelObjects(model, podIp), policies: [] };
    const b = pod(state, "alpha/api");
    state.policies.push({ metadata: { name: "r", namespace: "alpha" }, spec: { podSelector: {}, ingress: [{ _from: [{ namespaceSelector: {} }, { ipBlock: { cidr: "192.0.2.0/24", except: ["192.0.2.128/25"] } }] }] } } as V1NetworkPolicy);
    expect(connectionAllowed(state, { ip: "192.0.2.5" }, { pod: b }, 80, "TCP")).toBe(true);
    expect(connectionAllowed(state, { ip: "192.0.2.200" }, { pod: b }, 80, "TCP")).toBe(false);
    expect(connectionAllowed(state, { ip: "198.51.100.1" }, { pod: b }, 80, "TCP")).toBe(false);
  });
});
