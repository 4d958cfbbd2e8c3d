import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CoreV1Api, NetworkingV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { createPod, deletePodNetwork, waitDefaultServiceAccount, type LabNode, type LabPod } from "../../lab/cluster.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { EXIT, type DropsReply, type ExplainReply, type IpamGcReply, type IpamReply, type StatusReply } from "../../lib/ctl-api.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { deleteNetns, execIn } from "../../lib/kernel/netns.ts";
import { sharedLab } from "../support/lab.ts";
import { until } from "../support/until.ts";

// twillctl, the built executable, against the shared lab's daemons: run in a
// node's namespace as an operator runs it on a node (its socket), and across
// nodes through the daemons' kubeconfig and health ports. Every answer is
// compared with the kernel or the cluster it describes.

const REPO = resolve(import.meta.dirname, "../..");
const TWILLCTL = join(REPO, "dist/ctl/twillctl");
const NS = "ctl-test";
const PORT = 7070;

let lab: RunningLab;
let node1: LabNode;
let node2: LabNode;
let client: LabPod;
let other: LabPod;
let server: LabPod;
let listener: ChildProcess | undefined;
const pods: LabPod[] = [];

async function ctl(node: LabNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const socket = join(node.dir, "ctl.sock");
  return execIn(node.ns, [TWILLCTL, "--socket", socket, "--kubeconfig", lab.state.daemonFiles!.kubeconfig, ...args], { allowFailure: true });
}

async function ctlJson<T>(node: LabNode, args: string[], expectCode: number = EXIT.OK): Promise<T> {
  const r = await ctl(node, [...args, "-o", "json"]);
  if (r.code !== expectCode) throw new Error(`twillctl ${args.join(" ")} exited ${r.code}, expected ${expectCode}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

const policy = {
  metadata: { name: "server-from-client", namespace: NS },
  spec: { podSelector: { matchLabels: { role: "server" } }, policyTypes: ["Ingress"], ingress: [{ _from: [{ podSelector: { matchLabels: { role: "client" } } }], ports: [{ port: PORT, protocol: "TCP" }] }] },
};

// The client may send only to the server (any port): egress isolation, checked in node1's kernel.
const egressPolicy = {
  metadata: { name: "client-to-server", namespace: NS },
  spec: { podSelector: { matchLabels: { role: "client" } }, policyTypes: ["Egress"], egress: [{ to: [{ podSelector: { matchLabels: { role: "server" } } }] }] },
};

beforeAll(async () => {
  lab = await sharedLab();
  [node1, node2] = lab.state.nodes as [LabNode, LabNode];
  const core = lab.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await waitDefaultServiceAccount(lab.kc, NS);
  client = await createPod(lab.kc, lab.state.name, node1, "client", { namespace: NS, labels: { role: "client" } });
  pods.push(client);
  other = await createPod(lab.kc, lab.state.name, node1, "other", { namespace: NS, labels: { role: "other" } });
  pods.push(other);
  server = await createPod(lab.kc, lab.state.name, node2, "server", { namespace: NS, labels: { role: "server" } });
  pods.push(server);
  listener = spawn("ip", ["netns", "exec", server.ns, "socat", `TCP-LISTEN:${PORT},reuseaddr,fork`, "OPEN:/dev/null"], { stdio: "ignore" });
  await lab.kc.makeApiClient(NetworkingV1Api).createNamespacedNetworkPolicy({ namespace: NS, body: policy });
  await lab.kc.makeApiClient(NetworkingV1Api).createNamespacedNetworkPolicy({ namespace: NS, body: egressPolicy });
  const chain = `in-${server.ip.replaceAll(".", "_")}`;
  await until("the server's policy chain on node2", async () => (await execIn(node2.ns, ["nft", "list", "chain", "inet", "twill-policy", chain], { allowFailure: true })).code === 0);
  await until("the client's egress chain on node1", async () => (await execIn(node1.ns, ["nft", "list", "chain", "inet", "twill-policy", `eg-${client.ip.replaceAll(".", "_")}`], { allowFailure: true })).code === 0);
}, 120_000);

afterAll(async () => {
  listener?.kill("SIGKILL");
  const core = lab.kc.makeApiClient(CoreV1Api);
  for (const p of pods) {
    const node = lab.state.nodes.find((n) => n.name === p.node)!;
    await deletePodNetwork(node, p).catch(() => {});
    await deleteNetns(p.ns).catch(() => {});
    // No kubelet confirms a deletion in this lab: gone at once, not after a grace period.
    await core.deleteNamespacedPod({ name: p.name, namespace: NS, gracePeriodSeconds: 0 }).catch(() => {});
  }
  await core.deleteNamespace({ name: NS }).catch(() => {});
  await lab.close();
});

describe("twillctl status", () => {
  it("counts what the kernel holds: Twill's routes, permanent neighbours and FDB entries, isolated pods", async () => {
    const s = await ctlJson<StatusReply>(node2, ["status"]);
    const routes = JSON.parse((await execIn(node2.ns, ["ip", "-j", "route", "show", "proto", "211"])).stdout) as unknown[];
    const neigh = JSON.parse((await execIn(node2.ns, ["ip", "-j", "neigh", "show", "dev", "twill.vxlan", "nud", "permanent"])).stdout) as unknown[];
    const fdb = JSON.parse((await execIn(node2.ns, ["bridge", "-j", "fdb", "show", "dev", "twill.vxlan"])).stdout) as { dst?: string; state?: string }[];
    const chains = (await execIn(node2.ns, ["nft", "-t", "list", "table", "inet", "twill-policy"])).stdout.match(/chain in-\d/g) ?? [];
    const peers = lab.state.nodes.length - 1;
    expect(s).toMatchObject({ node: "node2", backend: "vxlan", ready: true, policy: "on", mtu: 1450 });
    expect(s.counts.routes).toBe(routes.length);
    expect(s.counts.routes).toBe(peers);
    expect(s.kernel.routes).toBe(routes.length);
    expect(s.counts.neighbours).toBe(neigh.length);
    expect(s.counts.fdb).toBe(fdb.filter((f) => f.dst && f.state === "permanent").length);
    expect(s.counts.isolatedPods).toBe(chains.length);
    expect(s.counts.isolatedPods).toBeGreaterThanOrEqual(1);
    expect(Date.now() - Date.parse(s.lastSync!)).toBeLessThan(60_000);
  });

  it("--all-nodes asks every node's daemon over its health port, found through the kubeconfig", async () => {
    const all = await ctlJson<StatusReply[]>(node1, ["status", "--all-nodes"]);
    expect(all.map((s) => s.node).sort()).toEqual(lab.state.nodes.map((n) => n.name).sort());
    expect(all.every((s) => s.ready)).toBe(true);
    const text = await ctl(node1, ["status", "--all-nodes"]);
    expect(text.code).toBe(EXIT.OK);
    expect(text.stdout).toMatch(/^NODE\s+READY\s+BACKEND/);
    // Not a terminal: no colour codes.
    expect(text.stdout).not.toContain("\x1b[");
    // On a terminal (script(1) gives it one): colours.
    const tty = await exec(["script", "-qec", `ip netns exec ${node1.ns} ${TWILLCTL} --socket ${join(node1.dir, "ctl.sock")} status`, "/dev/null"], { allowFailure: true, env: { ...process.env, TERM: "xterm", NO_COLOR: undefined } });
    expect(tty.stdout).toContain("\x1b[32myes\x1b[39m");
    const yaml = parseYaml((await ctl(node1, ["status", "--all-nodes", "-o", "yaml"])).stdout) as StatusReply[];
    expect(yaml.map((s) => s.node).sort()).toEqual(all.map((s) => s.node).sort());
  });

  it("a missing socket is exit 3 with a sentence, a bad command exit 2", async () => {
    const r = await execIn(node1.ns, [TWILLCTL, "--socket", "/run/twill-lab/nonexistent/ctl.sock", "status"], { allowFailure: true });
    expect(r.code).toBe(EXIT.UNREACHABLE);
    expect(r.stderr).toContain("no daemon socket");
    expect((await ctl(node1, ["statsu"])).code).toBe(EXIT.USAGE);
    expect((await ctl(node1, ["policy", "explain", "a/b"])).code).toBe(EXIT.USAGE);
  });
});

describe("twillctl ipam", () => {
  it("shows this node's pods with their containers, and a leaked record as a candidate that gc releases only with --apply", async () => {
    const r = await ctlJson<IpamReply>(node1, ["ipam"]);
    for (const p of [client, other]) {
      expect(r.allocations).toContainEqual(expect.objectContaining({ ip: p.ip, pod: `${NS}/${p.name}`, containerId: p.containerId, ifname: "eth0", leak: false }));
    }
    expect(r.cidrs).toEqual([{ cidr: node1.podCIDR, size: 256, used: r.allocations.length }]);
    // A record nobody holds, written two minutes ago (a DEL that never came).
    const dir = join(node1.ipamDir, r.allocations[0]!.network);
    const leaked = join(dir, "10.244.0.250");
    mkdirSync(dir, { recursive: true });
    writeFileSync(leaked, "ctl-test-leaked\neth0");
    const old = new Date(Date.now() - 120_000);
    utimesSync(leaked, old, old);
    try {
      const withLeak = await ctlJson<IpamReply>(node1, ["ipam"], EXIT.FINDINGS);
      expect(withLeak.allocations.filter((a) => a.leak).map((a) => a.ip)).toEqual(["10.244.0.250"]);
      const dry = await ctlJson<IpamGcReply>(node1, ["ipam", "gc"]);
      expect(dry).toMatchObject({ apply: false, released: [expect.objectContaining({ ip: "10.244.0.250", containerId: "ctl-test-leaked" })] });
      expect(existsSync(leaked)).toBe(true);
      // Mutating calls are refused over the read-only health port.
      expect((await ctl(node2, ["ipam", "gc", "--apply", "--node", "node1"])).code).toBe(EXIT.FORBIDDEN);
      expect(existsSync(leaked)).toBe(true);
      const applied = await ctlJson<IpamGcReply>(node1, ["ipam", "gc", "--apply"]);
      expect(applied.released.map((a) => a.ip)).toEqual(["10.244.0.250"]);
      expect(existsSync(leaked)).toBe(false);
      expect(existsSync(join(dir, client.ip))).toBe(true);
    } finally {
      rmSync(leaked, { force: true });
    }
  });
});

describe("twillctl policy explain", () => {
  it("an allowed pair: the policy rule that admits it, and the kernel's set element and accept rule", async () => {
    const r = await ctlJson<ExplainReply>(node1, ["policy", "explain", `${NS}/client`, `${NS}/server`, `${PORT}/tcp`]);
    expect(r.verdict).toBe("allow");
    const [eg, ing] = r.directions;
    expect(eg).toMatchObject({ direction: "egress", verdict: "allow", isolated: true, node: "node1", isolatedBy: [`${NS}/client-to-server`] });
    expect(eg!.allowedBy).toEqual([{ policy: `${NS}/client-to-server`, rule: 0, text: "to pods role=server on any port" }]);
    expect(eg!.kernel).toMatchObject({ node: "node1", chain: `eg-${client.ip.replaceAll(".", "_")}`, agrees: true });
    expect(eg!.kernel!.element).toContain(server.ip);
    expect(eg!.kernel!.rule).toMatch(/@eg-\S+ counter packets \d+ bytes \d+ return$/);
    expect(ing).toMatchObject({ direction: "ingress", verdict: "allow", isolated: true, node: "node2", isolatedBy: [`${NS}/server-from-client`] });
    expect(ing!.allowedBy).toEqual([{ policy: `${NS}/server-from-client`, rule: 0, text: `from pods role=client on ${PORT}/TCP` }]);
    // Checked in node2's kernel, reached over its health port.
    expect(ing!.kernel).toMatchObject({ node: "node2", chain: `in-${server.ip.replaceAll(".", "_")}`, agrees: true });
    expect(ing!.kernel!.element).toContain(`${client.ip} . tcp . ${PORT}`);
    expect(ing!.kernel!.rule).toMatch(/@in-\S+ counter packets \d+ bytes \d+ accept$/);
  });

  it("a denied pair: exit 1, the isolating policy, and the kernel's drop rule with no element", async () => {
    const r = await ctlJson<ExplainReply>(node1, ["policy", "explain", `${NS}/other`, `${NS}/server`, `${PORT}/tcp`], EXIT.FINDINGS);
    expect(r.verdict).toBe("deny");
    const ing = r.directions[1]!;
    expect(ing).toMatchObject({ verdict: "deny", isolated: true, allowedBy: [], isolatedBy: [`${NS}/server-from-client`] });
    expect(ing.kernel).toMatchObject({ element: null, agrees: true });
    expect(ing.kernel!.rule).toMatch(/counter packets \d+ bytes \d+ goto drop-ingress/);
    // The allowed peer on another port is denied too: ports are part of the rule.
    expect((await ctlJson<ExplainReply>(node1, ["policy", "explain", `${NS}/client`, `${NS}/server`, "7071/tcp"], EXIT.FINDINGS)).verdict).toBe("deny");
  });

  it("egress: the client may not leave for an address outside the cluster; asked without a local socket, through the kubeconfig", async () => {
    const r = await execIn(node1.ns, [TWILLCTL, "--socket", "/run/twill-lab/nonexistent/ctl.sock", "--kubeconfig", lab.state.daemonFiles!.kubeconfig, "policy", "explain", `${NS}/client`, "192.0.2.7", "443/tcp", "-o", "json"], { allowFailure: true });
    expect(r.code).toBe(EXIT.FINDINGS);
    const e = JSON.parse(r.stdout) as ExplainReply;
    expect(e.directions[0]).toMatchObject({ direction: "egress", verdict: "deny", isolatedBy: [`${NS}/client-to-server`], allowedBy: [] });
    expect(e.directions[0]!.kernel).toMatchObject({ node: "node1", element: null, agrees: true });
    expect(e.directions[0]!.kernel!.rule).toContain("goto drop-egress");
    expect(e.directions[1]!.summary).toContain("192.0.2.7 is not a pod");
  });

  it("a pod no policy isolates, to an address outside the cluster", async () => {
    const r = await ctlJson<ExplainReply>(node1, ["policy", "explain", `${NS}/other`, "192.0.2.7", "443/tcp"]);
    expect(r.verdict).toBe("allow");
    expect(r.directions[0]!.summary).toBe(`no policy isolates ${NS}/other for egress`);
    expect(r.directions[0]!.kernel).toMatchObject({ node: "node1", chain: "forward", agrees: true });
    const text = await ctl(node1, ["policy", "explain", `${NS}/other`, `${NS}/client`, "80"]);
    expect(text.stdout).toContain(`no policy isolates ${NS}/client for ingress`);
  });
});

describe("twillctl trace and drops", () => {
  it("trace: a denied probe is dropped by the pod's policy chain on the destination's node; an allowed one connects", async () => {
    const denied = await ctl(node1, ["trace", `${NS}/other`, `${NS}/server`, `${PORT}/tcp`, "-o", "json"]);
    expect(denied.code).toBe(EXIT.FINDINGS);
    const d = JSON.parse(denied.stdout) as { probe: { connected: boolean }; nodes: { node: string; steps: { table: string; chain: string; rule: string; verdict: string }[]; decision: { chain: string; verdict: string } | null }[] };
    expect(d.probe.connected).toBe(false);
    const dst = d.nodes.find((n) => n.node === "node2")!;
    expect(dst.decision).toMatchObject({ chain: "drop-ingress", verdict: "drop" });
    expect(dst.steps).toContainEqual(expect.objectContaining({ table: "inet twill-policy", chain: `in-${server.ip.replaceAll(".", "_")}`, verdict: "goto drop-ingress" }));
    // The source's node let it through its own chains.
    expect(d.nodes.find((n) => n.node === "node1")!.steps.some((s) => s.table === "inet twill-policy")).toBe(true);
    const allowed = await ctl(node1, ["trace", `${NS}/client`, `${NS}/server`, `${PORT}/tcp`, "-o", "json"]);
    expect(allowed.code).toBe(EXIT.OK);
    expect((JSON.parse(allowed.stdout) as { probe: { connected: boolean } }).probe.connected).toBe(true);
    // The trace table is gone afterwards.
    for (const n of [node1, node2]) expect((await execIn(n.ns, ["nft", "list", "tables"])).stdout).not.toContain("twill-trace");
  });

  it("trace --observe: no probe, the connection the operator makes is traced on both pods' nodes", async () => {
    const observing = ctl(node1, ["trace", `${NS}/other`, `${NS}/server`, `${PORT}/tcp`, "--observe", "3", "-o", "json"]);
    // The operator's connection, repeated until the observation ends: how long twillctl takes to start
    // observing depends on the machine's load, and a connection made before then is not seen.
    let done = false;
    void observing.finally(() => (done = true));
    while (!done) {
      await execIn(other.ns, ["socat", "-T1", "-u", `TCP:${server.ip}:${PORT},connect-timeout=1`, "-"], { allowFailure: true });
      await new Promise((r) => setTimeout(r, 300));
    }
    const r = await observing;
    expect(r.code).toBe(EXIT.FINDINGS);
    const d = JSON.parse(r.stdout) as { nodes: { node: string; packets: number; decision: { chain: string; verdict: string } | null }[] };
    expect(d.nodes.map((n) => n.node).sort()).toEqual(["node1", "node2"]);
    expect(d.nodes.find((n) => n.node === "node2")!.decision).toMatchObject({ chain: "drop-ingress", verdict: "drop" });
    expect(d.nodes.find((n) => n.node === "node1")!.packets).toBeGreaterThanOrEqual(1);
  });

  it("drops: the denied connection counted on the server's ingress and logged with source, port and policy", async () => {
    const before = (await ctlJson<DropsReply>(node2, ["drops", `${NS}/server`])).totals.find((t) => t.direction === "ingress")?.packets ?? 0;
    await execIn(other.ns, ["socat", "-T1", "-u", `TCP:${server.ip}:${PORT},connect-timeout=1`, "-"], { allowFailure: true });
    let r: DropsReply | undefined;
    await until("the drop in twillctl drops", async () => {
      r = await ctlJson<DropsReply>(node2, ["drops", `${NS}/server`]);
      return (r.totals.find((t) => t.direction === "ingress")?.packets ?? 0) > before && r.recent.length > 0;
    }, 10_000);
    expect(r!.totals).toContainEqual(expect.objectContaining({ pod: `${NS}/server`, ip: server.ip, direction: "ingress" }));
    expect(r!.recent.at(-1)).toMatchObject({ node: "node2", direction: "ingress", pod: `${NS}/server`, src: other.ip, dst: server.ip, proto: "tcp", port: PORT, isolatedBy: [`${NS}/server-from-client`] });
    // The allowed client's connection is not a drop.
    expect(r!.recent.some((e) => e.src === client.ip)).toBe(false);
  });

  it("drops --follow streams a drop as it happens, one JSON line each", async () => {
    const socket = join(node2.dir, "ctl.sock");
    const follower = spawn("ip", ["netns", "exec", node2.ns, TWILLCTL, "--socket", socket, "drops", `${NS}/server`, "--follow", "-o", "json"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    follower.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    try {
      await new Promise((r) => setTimeout(r, 500));
      await execIn(other.ns, ["socat", "-T1", "-u", `TCP:${server.ip}:${PORT},connect-timeout=1`, "-"], { allowFailure: true });
      await until("a followed drop", async () => out.includes("\n"), 10_000);
      expect(JSON.parse(out.split("\n")[0]!)).toMatchObject({ direction: "ingress", pod: `${NS}/server`, src: other.ip, port: PORT });
    } finally {
      follower.kill();
    }
  });
});
