import fc from "fast-check";
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { connectionAllowed, type ClusterState } from "../../daemon/policy/model.ts";
import { MODEL } from "./netpol/definitions.ts";
import { filesOnDisk, generatedFiles } from "./netpol/generate.ts";
import { reachable, type Expression, type Peer, type Policy, type PortEntry, type Proto, type Rule, type Selector, type World } from "./netpol/oracle.ts";

// Twill's own conformance cases (test/policy/netpol/) are only as good as the
// oracle that wrote their expectations. Two checks here: the committed files
// are what generate.ts writes today, and on random policies over the same
// cluster the oracle and daemon/policy/model.ts (written separately) agree.

describe("test/policy/netpol: the committed cases", () => {
  it("are exactly what generate.ts produces (run it after changing definitions.ts or oracle.ts)", () => {
    const want = generatedFiles();
    const have = filesOnDisk();
    expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, v] of want) expect(have.get(k), k).toBe(v);
  });
});

const KEYS = ["app", "tier", "team", "env", "role"];
const VALUES = ["web", "api", "db", "front", "back", "blue", "red", "prod", "dev"];
const PROTOS: Proto[] = ["TCP", "UDP", "SCTP"];
const ip = (i: number) => `10.244.${Math.floor(i / 3) + 1}.${(i % 3) + 11}`;
const ADDRS = MODEL.pods.map((_, i) => ip(i));

const expression: fc.Arbitrary<Expression> = fc
  .record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom("In", "NotIn", "Exists", "DoesNotExist") as fc.Arbitrary<Expression["operator"]>, values: fc.subarray(VALUES, { minLength: 1, maxLength: 3 }) })
  .map((e) => (e.operator === "Exists" || e.operator === "DoesNotExist" ? { key: e.key, operator: e.operator } : e));
const selector: fc.Arbitrary<Selector> = fc.record(
  { matchLabels: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 }), matchExpressions: fc.array(expression, { maxLength: 2 }) },
  { requiredKeys: [] },
);
const ipBlock: fc.Arbitrary<NonNullable<Peer["ipBlock"]>> = fc.oneof<fc.Arbitrary<NonNullable<Peer["ipBlock"]>>[]>(
  fc.constantFrom(...ADDRS).map((a) => ({ cidr: `${a}/32` })),
  fc.subarray(ADDRS, { maxLength: 3 }).map((ex) => ({ cidr: "10.244.0.0/16", except: ex.map((a) => `${a}/32`) })),
  fc.constantFrom<NonNullable<Peer["ipBlock"]>>({ cidr: "10.244.2.0/24" }, { cidr: "10.244.0.0/22", except: ["10.244.1.0/24"] }, { cidr: "192.0.2.0/24" }),
);
const peer: fc.Arbitrary<Peer> = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record({ namespaceSelector: selector }),
  fc.record({ podSelector: selector, namespaceSelector: selector }),
  fc.record({ ipBlock }),
);
const portEntry: fc.Arbitrary<PortEntry> = fc.oneof(
  fc.record({ protocol: fc.constantFrom(...PROTOS) }),
  fc.record({ port: fc.constantFrom(79, 80, 81), protocol: fc.constantFrom(...PROTOS) }, { requiredKeys: ["port"] }),
  fc.record({ port: fc.constantFrom(79, 80, 81), endPort: fc.constantFrom(80, 81, 90), protocol: fc.constantFrom(...PROTOS) }, { requiredKeys: ["port", "endPort"] }).filter((e) => e.endPort! >= (e.port as number)),
  fc.record({ port: fc.constantFrom("http", "metrics", "dgram", "echo", "nothing"), protocol: fc.constantFrom(...PROTOS) }, { requiredKeys: ["port"] }),
);
// A list that may be absent, empty or filled: the three mean different things in places.
const maybeList = <T,>(item: fc.Arbitrary<T>) => fc.option(fc.array(item, { maxLength: 2 }), { nil: undefined });
const rule = (peersKey: "from" | "to"): fc.Arbitrary<Rule> =>
  fc.record({ peers: maybeList(peer), ports: maybeList(portEntry) }).map((r) => ({ ...(r.peers ? { [peersKey]: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) }));
const policy = (i: number): fc.Arbitrary<Policy> =>
  fc
    .record({
      namespace: fc.constantFrom(...MODEL.namespaces.map((n) => n.name)),
      podSelector: selector,
      types: fc.option(fc.subarray(["Ingress", "Egress"] as const, { minLength: 1 }), { nil: undefined }),
      ingress: fc.option(fc.array(rule("from"), { maxLength: 2 }), { nil: undefined }),
      egress: fc.option(fc.array(rule("to"), { maxLength: 2 }), { nil: undefined }),
    })
    .map((p) => ({
      metadata: { namespace: p.namespace, name: `p${i}` },
      spec: { podSelector: p.podSelector, ...(p.types ? { policyTypes: [...p.types] } : {}), ...(p.ingress ? { ingress: p.ingress } : {}), ...(p.egress ? { egress: p.egress } : {}) },
    }));
const cluster = fc.record({
  podLabels: fc.array(fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 3 }), { minLength: MODEL.pods.length, maxLength: MODEL.pods.length }),
  nsLabels: fc.array(fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 }), { minLength: 3, maxLength: 3 }),
  policies: fc.integer({ min: 1, max: 4 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => policy(i)))),
});

describe("the oracle and daemon/policy/model.ts", () => {
  it("agree on random policies, labels and ports over the cases' cluster", () => {
    fc.assert(
      fc.property(cluster, (c) => {
        const nsLabels = MODEL.namespaces.map((n, i) => ({ ...c.nsLabels[i], "kubernetes.io/metadata.name": n.name }));
        const world: World = {
          namespaces: new Map(MODEL.namespaces.map((n, i) => [n.name, nsLabels[i]!])),
          pods: MODEL.pods.map((p, i) => ({ namespace: p.namespace, name: p.name, labels: c.podLabels[i]!, ip: ip(i), ports: p.containers.flatMap((x) => x.ports) })),
          policies: c.policies,
        };
        // The daemon's model reads the same objects: it accepts the wire form's `from`.
        const state: ClusterState = {
          namespaces: MODEL.namespaces.map((n, i): V1Namespace => ({ metadata: { name: n.name, labels: nsLabels[i] } })),
          pods: MODEL.pods.map((p, i): V1Pod => ({
            metadata: { namespace: p.namespace, name: p.name, labels: c.podLabels[i] },
            spec: { containers: p.containers.map((x) => ({ name: x.name, ports: x.ports.map((cp) => ({ ...cp })) })) },
            status: { podIP: ip(i) },
          })),
          policies: c.policies as unknown as V1NetworkPolicy[],
        };
        for (const [si, src] of world.pods.entries()) {
          for (const [di, dst] of world.pods.entries()) {
            if (si === di) continue;
            for (const proto of PROTOS) {
              for (const port of [79, 80, 81]) {
                const model = connectionAllowed(state, { pod: state.pods[si]! }, { pod: state.pods[di]! }, port, proto);
                expect(model, `${src.namespace}/${src.name} -> ${dst.namespace}/${dst.name} ${proto}/${port}`).toBe(reachable(world, src, dst, port, proto));
              }
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
