import { spawn } from "node:child_process";
import { CoreV1Api } from "@kubernetes/client-node";
import { execIn, netnsPath } from "../../lib/kernel/netns.ts";
import { createPod, waitDefaultServiceAccount } from "../cluster.ts";
import { rawRequest } from "../kube.ts";
import type { RunningLab } from "../lab.ts";
import { fillTemplates, listenerCommands, type Action, type Case, type Model, type Probe } from "./corpus.ts";

// The NetworkPolicy conformance corpus driven through a lab: namespaces, pods
// and policies created in the real kube-apiserver, pods spread over the lab's
// nodes (so most probes cross the overlay), Twill's daemons programming
// NetworkPolicy from their watches, and every cell probed for real (TCP
// connect, UDP request/reply) until it matches or 15 s pass.

export interface ProbeResult {
  probe: Probe;
  ok: boolean;
}

export class ConformanceCluster {
  private readonly lab: RunningLab;
  private readonly model: Model;
  private readonly ips = new Map<string, string>();
  private readonly podNs = new Map<string, string>();

  constructor(lab: RunningLab, model: Model) {
    this.lab = lab;
    this.model = model;
  }

  private api(method: string, path: string, body?: unknown, type?: string) {
    return rawRequest(this.lab.forwarder.port, this.lab.state.admin, method, path, body, type);
  }

  readonly podIp = (key: string) => this.ips.get(key)!;

  /** The model's namespaces and pods, pods placed round-robin on the lab's nodes, with real listeners. */
  async create(): Promise<void> {
    const core = this.lab.kc.makeApiClient(CoreV1Api);
    for (const ns of this.model.namespaces) {
      const labels = Object.fromEntries(Object.entries(ns.labels).filter(([k]) => k !== "kubernetes.io/metadata.name"));
      await core.createNamespace({ body: { metadata: { name: ns.name, labels } } });
      await waitDefaultServiceAccount(this.lab.kc, ns.name);
    }
    for (const [i, p] of this.model.pods.entries()) {
      const key = `${p.namespace}/${p.name}`;
      const node = this.lab.state.nodes[i % this.lab.state.nodes.length]!;
      const pod = await createPod(this.lab.kc, this.lab.state.name, node, p.name, {
        namespace: p.namespace,
        labels: p.labels,
        exactLabels: true,
        containers: p.containers.map((c) => ({ name: c.name, image: "twill-lab/netns", ports: c.ports.map((x) => ({ ...x })) })),
      });
      this.ips.set(key, pod.ip);
      this.podNs.set(key, pod.ns);
      await execIn(pod.ns, ["sh", "-c", listenerCommands().map((s) => `nohup ${s} >/dev/null 2>&1 &`).join(" ")]);
    }
  }

  private probe(p: Probe): Promise<boolean> {
    const ip = this.podIp(p.to);
    const args = p.protocol === "TCP" ? ["socat", "-T1", "-u", `TCP:${ip}:${p.port},connect-timeout=1`, "-"] : ["socat", "-T1", "-", `${p.protocol}:${ip}:${p.port}`];
    return new Promise((resolve) => {
      const child = spawn("nsenter", [`--net=${netnsPath(this.podNs.get(p.from)!)}`, ...args], { stdio: ["pipe", "pipe", "ignore"] });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.on("close", () => resolve(out.includes("ok")));
      child.stdin.on("error", () => {});
      child.stdin.end(p.protocol === "UDP" ? "x\n" : "");
    });
  }

  /** Probes every scored cell until all match or `timeoutMs` passes (the daemons converge meanwhile). */
  async probeAll(probes: Probe[], timeoutMs = 15_000): Promise<ProbeResult[]> {
    const scored = probes.filter((p) => !p.loopback);
    const ok = new Map<Probe, boolean>();
    let pending = scored;
    const deadline = Date.now() + timeoutMs;
    while (pending.length > 0) {
      const got = await Promise.all(pending.map((p) => this.probe(p)));
      pending.forEach((p, i) => ok.set(p, got[i] === p.expect));
      pending = pending.filter((p) => !ok.get(p));
      if (pending.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    return scored.map((probe) => ({ probe, ok: ok.get(probe) ?? false }));
  }

  private async must(r: Promise<{ status: number; body: string }>, what: string): Promise<void> {
    const res = await r;
    if (res.status >= 300) throw new Error(`${what}: ${res.status} ${res.body.slice(0, 300)}`);
  }

  async act(a: Action): Promise<void> {
    if (a.action === "apply") {
      const p = fillTemplates(a.policy, this.podIp);
      const base = `/apis/networking.k8s.io/v1/namespaces/${p.metadata!.namespace}/networkpolicies`;
      const put = await this.api("PUT", `${base}/${p.metadata!.name}`, p);
      if (put.status === 404) await this.must(this.api("POST", base, p), "create policy");
      else if (put.status >= 300) throw new Error(`replace policy: ${put.status} ${put.body}`);
    } else if (a.action === "delete") {
      await this.must(this.api("DELETE", `/apis/networking.k8s.io/v1/namespaces/${a.namespace}/networkpolicies/${a.name}`), "delete policy");
    } else if (a.action === "setPodLabels") {
      const [ns, name] = a.pod.split("/");
      await this.must(this.api("PATCH", `/api/v1/namespaces/${ns}/pods/${name}`, [{ op: "replace", path: "/metadata/labels", value: a.labels }], "application/json-patch+json"), "set pod labels");
    } else {
      // The apiserver adds kubernetes.io/metadata.name back itself.
      await this.must(this.api("PATCH", `/api/v1/namespaces/${a.namespace}`, [{ op: "replace", path: "/metadata/labels", value: a.labels }], "application/json-patch+json"), "set namespace labels");
    }
  }

  /** No policy in the model's namespaces, the model's labels everywhere. */
  async reset(): Promise<void> {
    for (const ns of this.model.namespaces) {
      await this.must(this.api("DELETE", `/apis/networking.k8s.io/v1/namespaces/${ns.name}/networkpolicies`), "delete policies");
      const labels = Object.fromEntries(Object.entries(ns.labels).filter(([k]) => k !== "kubernetes.io/metadata.name"));
      await this.act({ action: "setNamespaceLabels", namespace: ns.name, labels });
    }
    for (const p of this.model.pods) await this.act({ action: "setPodLabels", pod: `${p.namespace}/${p.name}`, labels: p.labels });
  }

  /** One case: reset, its policies, probes, then each step. Returns every scored probe's outcome. */
  async run(c: Case): Promise<{ step: string; results: ProbeResult[] }[]> {
    await this.reset();
    for (const p of c.policies) await this.act({ action: "apply", policy: p });
    const out = [{ step: "initial", results: await this.probeAll(c.probes) }];
    for (const step of c.steps ?? []) {
      for (const a of step.actions) await this.act(a);
      out.push({ step: step.description, results: await this.probeAll(step.probes) });
    }
    return out;
  }
}
