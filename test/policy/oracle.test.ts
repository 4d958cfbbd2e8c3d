import fc from "fast-check";
import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { contains } from "../../daemon/policy/boxes.ts";
import { compileNode, PROTO_NUM, renderPod } from "../../daemon/policy/compile.ts";
import { NodeCompiler } from "../../daemon/policy/incremental.ts";
import { connectionAllowed, type ClusterState, type Protocol } from "../../daemon/policy/model.ts";
import { parseIp } from "../../lib/net/cidr.ts";

// The compiler against the model on random clusters: for every pair of pods,
// protocol and port, "the compiled boxes admit it" must equal "the model
// allows it". This reaches combinations the conformance cases do not.

const NS = ["x", "y"];
const KEYS = ["app", "tier"];
const VALS = ["a", "b"];
const PROTOS: Protocol[] = ["TCP", "UDP", "SCTP"];

const labels = fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALS), { maxKeys: 2 });
const selector: fc.Arbitrary<V1LabelSelector> = fc.record(
  {
    matchLabels: labels,
    matchExpressions: fc.array(
      fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom("In", "NotIn", "Exists", "DoesNotExist"), values: fc.subarray(VALS) }).map((e) =>
        e.operator === "Exists" || e.operator === "DoesNotExist" ? { key: e.key, operator: e.operator } : e,
      ),
      { maxLength: 1 },
    ),
  },
  { requiredKeys: [] },
);
const peer: fc.Arbitrary<V1NetworkPolicyPeer> = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record({ namespaceSelector: selector }),
  fc.record({ podSelector: selector, namespaceSelector: selector }),
  fc.record({ ipBlock: fc.constantFrom({ cidr: "10.0.0.0/24" }, { cidr: "10.0.0.0/24", except: ["10.0.0.0/30"] }, { cidr: "10.0.0.4/31" }, { cidr: "0.0.0.0/0", except: ["10.0.0.2/32"] }) }),
).map((x) => x as V1NetworkPolicyPeer);
const port: fc.Arbitrary<V1NetworkPolicyPort> = fc.oneof(
  fc.record({ protocol: fc.constantFrom(...PROTOS) }),
  fc.record({ port: fc.constantFrom(80, 81), protocol: fc.constantFrom(...PROTOS) }, { requiredKeys: ["port"] }),
  fc.record({ port: fc.constant(80), endPort: fc.constant(81) }),
  fc.record({ port: fc.constantFrom("web", "alt", "none") }),
);
const rule = fc.record({ peers: fc.array(peer, { maxLength: 2 }), ports: fc.array(port, { maxLength: 2 }) }, { requiredKeys: [] });
const policy = (i: number) =>
  fc
    .record({
      ns: fc.constantFrom(...NS),
      podSelector: selector,
      ingress: fc.option(fc.array(rule, { maxLength: 2 }), { nil: undefined }),
      egress: fc.option(fc.array(rule, { maxLength: 2 }), { nil: undefined }),
      types: fc.option(fc.subarray(["Ingress", "Egress"], { minLength: 1 }), { nil: undefined }),
    })
    .map(
      (p): V1NetworkPolicy => ({
        metadata: { name: `p${i}`, namespace: p.ns },
        spec: {
          podSelector: p.podSelector,
          ...(p.types ? { policyTypes: p.types } : {}),
          ...(p.ingress ? { ingress: p.ingress.map((r) => ({ ...(r.peers ? { _from: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) })) } : {}),
          ...(p.egress ? { egress: p.egress.map((r) => ({ ...(r.peers ? { to: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) })) } : {}),
        },
      }),
    );
const pod = (i: number) =>
  fc.record({ ns: fc.constantFrom(...NS), labels, webPort: fc.constantFrom(80, 81) }).map(
    (p): V1Pod => ({
      metadata: { name: `pod${i}`, namespace: p.ns, labels: p.labels },
      // Named ports: "web" means a different number on different pods; "alt" is UDP only.
      spec: { containers: [{ name: "c", ports: [{ name: "web", containerPort: p.webPort }, { name: "alt", containerPort: 81, protocol: "UDP" }] }] },
      status: { podIP: `10.0.0.${i + 1}` },
    }),
  );
const cluster = fc
  .record({
    nsLabels: fc.tuple(labels, labels),
    pods: fc.tuple(pod(0), pod(1), pod(2), pod(3)),
    policies: fc.array(fc.nat(), { maxLength: 3 }).chain((xs) => fc.tuple(...xs.map((_, i) => policy(i)))),
  })
  .map(
    (c): ClusterState => ({
      namespaces: NS.map((name, i) => ({ metadata: { name, labels: { ...c.nsLabels[i], "kubernetes.io/metadata.name": name } } })),
      pods: [...c.pods],
      policies: [...c.policies],
    }),
  );

describe("compiled rules agree with the model", () => {
  it("on random clusters, every pod pair, protocol and port", () => {
    fc.assert(
      fc.property(cluster, (state) => {
        const rules = new Map(compileNode(state, state.pods).map((r) => [r.ip, r]));
        for (const src of state.pods) {
          for (const dst of state.pods) {
            if (src === dst) continue;
            const s = src.status!.podIP!;
            const d = dst.status!.podIP!;
            for (const proto of PROTOS) {
              for (const p of [79, 80, 81]) {
                const eg = rules.get(s)?.egress;
                const ing = rules.get(d)?.ingress;
                const compiled = (!eg || contains(eg, parseIp(d).value, PROTO_NUM[proto], p)) && (!ing || contains(ing, parseIp(s).value, PROTO_NUM[proto], p));
                expect(compiled, `${src.metadata!.name} -> ${dst.metadata!.name} ${proto}/${p}`).toBe(connectionAllowed(state, { pod: src }, { pod: dst }, p, proto));
              }
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

// The daemon compiles incrementally (only pods whose inputs changed); through
// any sequence of cluster states it must produce exactly what compiling from
// scratch produces. Successive states share objects (unchanged), carry
// equal-but-new copies (a watch re-delivering an object) and new objects.
const json = (x: unknown) => JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));

function mix(prev: ClusterState, next: ClusterState, keep: boolean[]): ClusterState {
  const pick = <T,>(a: T[], b: T[], offset: number): T[] => b.map((x, i) => (keep[(offset + i) % keep.length] && a[i] !== undefined ? a[i]! : x));
  const pods = pick(prev.pods, next.pods, 2);
  if (keep[9]) pods[0] = structuredClone(pods[0]!);
  return { namespaces: pick(prev.namespaces, next.namespaces, 0), pods, policies: keep[10] ? prev.policies : pick(prev.policies, next.policies, 6) };
}

describe("the incremental compiler", () => {
  it("equals compiling from scratch through random sequences of cluster changes", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(cluster, fc.array(fc.boolean(), { minLength: 12, maxLength: 12 })), { minLength: 2, maxLength: 6 }), (steps) => {
        const compiler = new NodeCompiler();
        let prev: ClusterState | undefined;
        for (const [next, keep] of steps) {
          const state = prev ? mix(prev, next, keep) : next;
          const local = state.pods.filter((_, i) => i !== 3);
          expect(json(compiler.compile(state, local))).toBe(json(compileNode(state, local).map(renderPod)));
          prev = state;
        }
      }),
      { numRuns: 300 },
    );
  });

  it("recompiles only the pods a policy change touches", () => {
    const ns = [{ metadata: { name: "x", labels: {} } }];
    const pods: V1Pod[] = [0, 1, 2].map((i) => ({ metadata: { name: `p${i}`, namespace: "x", labels: { app: `a${i}` } }, spec: { containers: [] }, status: { podIP: `10.0.0.${i + 1}` } }));
    const pol = (app: string, port: number): V1NetworkPolicy => ({ metadata: { name: app, namespace: "x" }, spec: { podSelector: { matchLabels: { app } }, ingress: [{ ports: [{ port }] }] } });
    const compiler = new NodeCompiler();
    const a0 = pol("a0", 80);
    compiler.compile({ namespaces: ns, pods, policies: [a0, pol("a1", 80)] }, pods);
    expect(compiler.lastStats.recompiled).toBe(3);
    const second = compiler.compile({ namespaces: ns, pods, policies: [a0, pol("a1", 81)] }, pods);
    // Only p1 is selected by the changed policy; p0 and p2 come from the memo.
    expect(compiler.lastStats.recompiled).toBe(1)
    expect(second).toHaveLength(2);
  });
});
