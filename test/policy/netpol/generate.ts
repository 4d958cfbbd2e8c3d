// Writes Twill's own NetworkPolicy cases: model.json and cases/*.json in this
// directory, from definitions.ts, with every expectation computed by oracle.ts.
//
//   node test/policy/netpol/generate.ts           rewrite the files
//   node test/policy/netpol/generate.ts --check   exit 1 if they differ from what would be written
//
// Run it by hand after editing definitions.ts or oracle.ts, and commit the
// output; test/policy/netpol-cases.test.ts fails when the two drift apart.
// The files use the same format as the upstream-derived conformance corpus
// (docs/policy.md), so lab/netpol/corpus.ts and every runner read both.
//
// Cases that use pod-address templates must not depend on where the pods'
// addresses fall, beyond all of them being inside one /8 (true of the model
// test, the kernel test's single node and the lab's 10.244.0.0/16). Each case
// is therefore evaluated under several address layouts, and a case whose
// matrix changes between them is refused.
import { readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { CASES, MODEL, type Action, type CaseDef, type Target } from "./definitions.ts";
import { block, networkOf, reachable, type Labels, type PodView, type Policy, type Proto, type World } from "./oracle.ts";

export const DIR = import.meta.dirname;

type Layout = (index: number, namespaceIndex: number, podIndex: number) => string;

const LAYOUTS: Record<string, Layout> = {
  "one /24 per namespace": (_i, n, p) => `10.244.${n + 1}.${p + 11}`,
  "one /24 for all": (i) => `10.97.8.${i + 2}`,
  "round robin over three nodes": (i) => `10.244.${i % 3}.${Math.floor(i / 3) + 2}`,
  "one /16 each": (i) => `10.${200 - i * 7}.0.5`,
};

interface Probe {
  from: string;
  to: string;
  port: number;
  protocol: Proto;
  expect: boolean;
  loopback?: true;
  policyExpect?: boolean;
}

const keyOf = (p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`;

function addresses(layout: Layout): Map<string, string> {
  const nsNames = MODEL.namespaces.map((n) => n.name);
  const seen = new Map<string, number>();
  return new Map(
    MODEL.pods.map((p, i) => {
      const podIndex = seen.get(p.namespace) ?? 0;
      seen.set(p.namespace, podIndex + 1);
      return [keyOf(p), layout(i, nsNames.indexOf(p.namespace), podIndex)];
    }),
  );
}

/** {{podIP ns/pod}} and {{podNet ns/pod len}} replaced in every string of the policy. */
function expand(p: Policy, ips: Map<string, string>): Policy {
  const ip = (key: string) => {
    const v = ips.get(key);
    if (!v) throw new Error(`template names unknown pod ${key}`);
    return v;
  };
  const text = JSON.stringify(p).replace(/\{\{(podIP|podNet) ([\w-]+\/[\w-]+)(?: (\d+))?\}\}/g, (_m, kind: string, key: string, len?: string) =>
    kind === "podIP" ? ip(key) : networkOf(ip(key), Number(len)),
  );
  const out = JSON.parse(text) as Policy;
  for (const rule of [...(out.spec.ingress ?? []), ...(out.spec.egress ?? [])]) {
    for (const peer of [...(rule.from ?? []), ...(rule.to ?? [])]) {
      if (!peer.ipBlock) continue;
      const outer = block(peer.ipBlock.cidr);
      for (const x of peer.ipBlock.except ?? []) {
        const inner = block(x);
        // The apiserver refuses an except that is not strictly inside its cidr.
        if (!(inner.size < outer.size && inner.base >= outer.base && inner.base + inner.size <= outer.base + outer.size)) {
          throw new Error(`${p.metadata.namespace}/${p.metadata.name}: except ${x} is not strictly inside ${peer.ipBlock.cidr}`);
        }
      }
    }
  }
  return out;
}

/** The cluster as a case finds it: the model's labels, no policies. */
function freshWorld(ips: Map<string, string>): World {
  return {
    namespaces: new Map(MODEL.namespaces.map((n) => [n.name, { ...n.labels }])),
    pods: MODEL.pods.map((p) => ({ namespace: p.namespace, name: p.name, labels: { ...p.labels }, ip: ips.get(keyOf(p))!, ports: p.containers.flatMap((c) => c.ports) })),
    policies: [],
  };
}

function act(world: World, a: Action, ips: Map<string, string>): void {
  switch (a.action) {
    case "apply": {
      const p = expand(a.policy, ips);
      const same = (q: Policy) => q.metadata.namespace === p.metadata.namespace && q.metadata.name === p.metadata.name;
      const at = world.policies.findIndex(same);
      if (at >= 0) world.policies[at] = p;
      else world.policies.push(p);
      return;
    }
    case "delete": {
      const before = world.policies.length;
      world.policies = world.policies.filter((q) => !(q.metadata.namespace === a.namespace && q.metadata.name === a.name));
      if (world.policies.length === before) throw new Error(`delete of ${a.namespace}/${a.name}, which does not exist`);
      return;
    }
    case "setPodLabels": {
      const pod = world.pods.find((p) => keyOf(p) === a.pod);
      if (!pod) throw new Error(`setPodLabels on unknown pod ${a.pod}`);
      pod.labels = { ...a.labels };
      return;
    }
    case "setNamespaceLabels": {
      if (!world.namespaces.has(a.namespace)) throw new Error(`setNamespaceLabels on unknown namespace ${a.namespace}`);
      const labels: Labels = { ...a.labels, "kubernetes.io/metadata.name": a.namespace };
      world.namespaces.set(a.namespace, labels);
      return;
    }
  }
}

function parseTarget(t: Target): { protocol: Proto; port: number } {
  const [protocol, port] = t.split("/") as [Proto, string];
  return { protocol, port: Number(port) };
}

/** The full matrix for each target: every pod to every pod, loopback cells marked and scored as reachable. */
function matrix(world: World, targets: Target[]): Probe[] {
  const out: Probe[] = [];
  for (const t of targets) {
    const { protocol, port } = parseTarget(t);
    for (const from of world.pods) {
      for (const to of world.pods) {
        const verdict = reachable(world, from, to, port, protocol);
        // A pod dialling its own address never leaves its namespace: no policy applies there.
        if (from === to) out.push({ from: keyOf(from), to: keyOf(to), port, protocol, expect: true, loopback: true, policyExpect: verdict });
        else out.push({ from: keyOf(from), to: keyOf(to), port, protocol, expect: verdict });
      }
    }
  }
  return out;
}

function evaluate(def: CaseDef, ips: Map<string, string>): { probes: Probe[]; steps: Probe[][] } {
  const world = freshWorld(ips);
  for (const p of def.policies) act(world, { action: "apply", policy: p }, ips);
  const probes = matrix(world, def.targets);
  const steps = (def.steps ?? []).map((s) => {
    for (const a of s.actions) act(world, a, ips);
    return matrix(world, s.targets ?? def.targets);
  });
  return { probes, steps };
}

function caseFile(def: CaseDef): object {
  const runs = Object.entries(LAYOUTS).map(([name, layout]) => ({ name, result: evaluate(def, addresses(layout)) }));
  const first = runs[0]!;
  for (const r of runs.slice(1)) {
    if (JSON.stringify(r.result) !== JSON.stringify(first.result)) throw new Error(`${def.name}: the expectations differ between "${first.name}" and "${r.name}"`);
  }
  const seen = new Set<string>();
  for (const p of def.policies) {
    const k = keyOf(p.metadata);
    if (seen.has(k)) throw new Error(`${def.name}: two policies named ${k}`);
    seen.add(k);
  }
  return {
    name: def.name,
    description: def.description,
    tags: def.tags,
    policies: def.policies,
    probes: first.result.probes,
    ...(def.steps ? { steps: def.steps.map((s, i) => ({ description: s.description, actions: s.actions, probes: first.result.steps[i] })) } : {}),
  };
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/** Every file this script owns, relative to DIR, with its content. */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  files.set(
    "model.json",
    json({
      description: "Twill's own NetworkPolicy cluster: namespaces alpha, beta, gamma with pods web, api, db each, every pod serving TCP and UDP on ports 80 and 81.",
      namespaces: MODEL.namespaces,
      pods: MODEL.pods,
      notes: [
        "gamma has no team label and db no tier label: selectors with NotIn or DoesNotExist match them.",
        "db names TCP 80 metrics and TCP 81 http, the other way round from web and api.",
        "Cases with {{podNet …}} templates assume every pod address lies in one /8.",
      ],
    }),
  );
  const names = new Set<string>();
  for (const def of CASES) {
    if (names.has(def.name)) throw new Error(`two cases named ${def.name}`);
    names.add(def.name);
    files.set(`cases/${def.name}.json`, json(caseFile(def)));
  }
  return files;
}

/** The case files now on disk, relative to DIR. */
export function filesOnDisk(): Map<string, string> {
  const out = new Map<string, string>([["model.json", readFileSync(join(DIR, "model.json"), "utf8")]]);
  for (const f of readdirSync(join(DIR, "cases")).filter((f) => f.endsWith(".json"))) out.set(`cases/${f}`, readFileSync(join(DIR, "cases", f), "utf8"));
  return out;
}

if (import.meta.main) {
  const want = generatedFiles();
  if (process.argv.includes("--check")) {
    const have = filesOnDisk();
    const stale = [...new Set([...want.keys(), ...have.keys()])].filter((k) => want.get(k) !== have.get(k));
    for (const k of stale) console.log(`out of date: ${k}`);
    process.exit(stale.length === 0 ? 0 : 1);
  }
  mkdirSync(join(DIR, "cases"), { recursive: true });
  for (const f of readdirSync(join(DIR, "cases")).filter((f) => f.endsWith(".json"))) rmSync(join(DIR, "cases", f));
  for (const [k, v] of want) writeFileSync(join(DIR, k), v);
  console.log(`wrote model.json and ${want.size - 1} cases to ${DIR}`);
}
