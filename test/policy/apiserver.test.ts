import { spawn } from "node:child_process";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn, netnsPath } from "../../lib/kernel/netns.ts";
import { createPod, waitDefaultServiceAccount } from "../../lab/cluster.ts";
import { rawRequest } from "../../lab/kube.ts";
import { startLab, type RunningLab } from "../../lab/lab.ts";
import { fillTemplates, loadCases, loadModel, type Action, type Probe } from "./corpus.ts";

// The conformance corpus end to end: namespaces, pods and policies created in
// the lab's real kube-apiserver, pods spread over two nodes (so most probes
// cross the VXLAN overlay), Twill's daemons compiling and programming
// NetworkPolicy from their watches, and every cell probed for real.

const model = loadModel();
const NODE_OF: Record<string, number> = { "x/a": 0, "x/b": 1, "x/c": 0, "y/a": 1, "y/b": 0, "y/c": 1, "z/a": 0, "z/b": 1, "z/c": 0 };
const ips = new Map<string, string>();
const podNs = new Map<string, string>();
let lab: RunningLab;

const api = (method: string, path: string, body?: unknown, type?: string) => rawRequest(lab.forwarder.port, lab.state.admin, method, path, body, type);

const UDP_SERVER = [
  "import select, socket",
  "socks = []",
  "for port in (80, 81):",
  "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port)); socks.append(s)",
  "while True:",
  "    for s in select.select(socks, [], [])[0]:",
  "        data, peer = s.recvfrom(2048); s.sendto(b'ok', peer)",
].join("\n");

beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan" });
  const core = lab.kc.makeApiClient(CoreV1Api);
  for (const ns of model.namespaces) {
    await core.createNamespace({ body: { metadata: { name: ns.name, labels: { ns: ns.labels.ns! } } } });
    await waitDefaultServiceAccount(lab.kc, ns.name);
  }
  for (const p of model.pods) {
    const key = `${p.namespace}/${p.name}`;
    const node = lab.state.nodes[NODE_OF[key]!]!;
    const pod = await createPod(lab.kc, lab.state.name, node, p.name, {
      namespace: p.namespace,
      labels: p.labels,
      exactLabels: true,
      containers: p.containers.map((c) => ({ name: c.name, image: "twill-lab/netns", ports: c.ports.map((x) => ({ ...x })) })),
    });
    ips.set(key, pod.ip);
    podNs.set(key, pod.ns);
    const servers = [...[80, 81].map((port) => `socat TCP-LISTEN:${port},reuseaddr,fork SYSTEM:'echo ok'`), `python3 -c "${UDP_SERVER}"`];
    await execIn(pod.ns, ["sh", "-c", servers.map((s) => `nohup ${s} >/dev/null 2>&1 &`).join(" ")]);
  }
}, 300_000);
afterAll(() => lab?.close());

const podIp = (key: string) => ips.get(key)!;

function probe(p: Probe): Promise<boolean> {
  const args =
    p.protocol === "TCP" ? ["socat", "-T1", "-u", `TCP:${podIp(p.to)}:${p.port},connect-timeout=1`, "-"] : ["socat", "-T1", "-", `UDP:${podIp(p.to)}:${p.port}`];
  return new Promise((resolve) => {
    const child = spawn("nsenter", [`--net=${netnsPath(podNs.get(p.from)!)}`, ...args], { stdio: ["pipe", "pipe", "ignore"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("close", () => resolve(out.includes("ok")));
    child.stdin.on("error", () => {});
    child.stdin.end(p.protocol === "UDP" ? "x\n" : "");
  });
}

/** Probes until every scored cell matches or 15 s pass (the daemons converge meanwhile). */
async function mismatches(probes: Probe[]): Promise<string[]> {
  let pending = probes.filter((p) => !p.loopback);
  const deadline = Date.now() + 15_000;
  while (pending.length > 0) {
    const got = await Promise.all(pending.map(probe));
    pending = pending.filter((p, i) => got[i] !== p.expect);
    if (pending.length === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  return pending.map((p) => `${p.from} -> ${p.to} ${p.protocol}/${p.port}: expected ${p.expect}`);
}

async function must(r: Promise<{ status: number; body: string }>, what: string): Promise<void> {
  const res = await r;
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${res.body.slice(0, 300)}`);
}

async function act(a: Action): Promise<void> {
  if (a.action === "apply") {
    const p = fillTemplates(a.policy, podIp);
    const base = `/apis/networking.k8s.io/v1/namespaces/${p.metadata!.namespace}/networkpolicies`;
    const put = await api("PUT", `${base}/${p.metadata!.name}`, p);
    if (put.status === 404) await must(api("POST", base, p), "create policy");
    else if (put.status >= 300) throw new Error(`replace policy: ${put.status} ${put.body}`);
  } else if (a.action === "delete") {
    await must(api("DELETE", `/apis/networking.k8s.io/v1/namespaces/${a.namespace}/networkpolicies/${a.name}`), "delete policy");
  } else if (a.action === "setPodLabels") {
    const [ns, name] = a.pod.split("/");
    await must(api("PATCH", `/api/v1/namespaces/${ns}/pods/${name}`, [{ op: "replace", path: "/metadata/labels", value: a.labels }], "application/json-patch+json"), "set pod labels");
  } else {
    // The apiserver adds kubernetes.io/metadata.name back itself.
    await must(api("PATCH", `/api/v1/namespaces/${a.namespace}`, [{ op: "replace", path: "/metadata/labels", value: a.labels }], "application/json-patch+json"), "set namespace labels");
  }
}

async function reset(): Promise<void> {
  for (const ns of model.namespaces) {
    await must(api("DELETE", `/apis/networking.k8s.io/v1/namespaces/${ns.name}/networkpolicies`), "delete policies");
    await act({ action: "setNamespaceLabels", namespace: ns.name, labels: { ns: ns.labels.ns! } });
  }
  for (const p of model.pods) await act({ action: "setPodLabels", pod: `${p.namespace}/${p.name}`, labels: p.labels });
}

describe("NetworkPolicy through the apiserver and Twill's daemons (conformance corpus, pods on two nodes)", () => {
  for (const c of loadCases()) {
    it(c.name, async () => {
      await reset();
      for (const p of c.policies) await act({ action: "apply", policy: p });
      const bad = await mismatches(c.probes);
      for (const step of c.steps ?? []) {
        for (const a of step.actions) await act(a);
        bad.push(...(await mismatches(step.probes)).map((m) => `[${step.description}] ${m}`));
      }
      expect(bad).toEqual([]);
    });
  }
});
