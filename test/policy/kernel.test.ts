import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exec } from "../../lib/kernel/exec.ts";
import { execIn, netnsPath } from "../../lib/kernel/netns.ts";
import { compileNode, describeNode, diffTransaction, TABLE, type DescribeOptions } from "../../daemon/policy/compile.ts";
import { PolicyTable } from "../../daemon/policy/nft.ts";
import type { ClusterState } from "../../daemon/policy/model.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { applyToState, listenerCommands, loadCases, loadModel, modelObjects, type Action, type Probe } from "../../lab/netpol/corpus.ts";
import { writeNode } from "../cni/fixtures.ts";
import { twillConf } from "../cni/fixtures.ts";

// The compiled nftables table in a real kernel: the nine pods of Twill's own
// conformance cases (test/policy/netpol/) attached by Twill's CNI plugin on
// one node, real TCP and UDP listeners, and every probe of every case made for
// real through the table. (The
// apiserver-driven runner, with the daemon programming the table, comes
// next; this proves the compiler and the dataplane shape.)

const model = loadModel();
const cases = loadCases();
const node = new NodeFixture("tpk");
const ips = new Map<string, string>();

beforeAll(async () => {
  await node.start();
  writeNode(node, ["10.97.8.0/24"]);
  for (const p of model.pods) {
    const key = `${p.namespace}/${p.name}`;
    const pod = await node.pod();
    const r = await runCni(node.ns, { command: "ADD", containerId: `np-${p.namespace}-${p.name}`, netns: pod.path, ifname: "eth0", stdin: twillConf(node) });
    if (r.code !== 0) throw new Error(r.stdout);
    ips.set(key, r.json.ips[0].address.split("/")[0]);
    podNs.set(key, pod.name);
    // TCP: socat per port. UDP: one small server for both ports (socat's
    // forking UDP server loses datagrams and dies under 70 concurrent probes).
    await execIn(pod.name, ["sh", "-c", listenerCommands().map((s) => `nohup ${s} >/dev/null 2>&1 &`).join(" ")]);
  }
  await new Promise((r) => setTimeout(r, 300));
}, 120_000);
afterAll(() => {
  table.close();
  return node.stop();
});

const podNs = new Map<string, string>();
const podIp = (key: string) => ips.get(key)!;

function probe(p: Probe): Promise<boolean> {
  const args =
    p.protocol === "TCP"
      ? ["socat", "-T1", "-u", `TCP:${podIp(p.to)}:${p.port},connect-timeout=1`, "-"]
      : ["socat", "-T1", "-", `UDP:${podIp(p.to)}:${p.port}`];
  return new Promise((resolve) => {
    const child = spawn("nsenter", [`--net=${netnsPath(podNs.get(p.from)!)}`, ...args], { stdio: ["pipe", "pipe", "ignore"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("close", () => resolve(out.includes("ok")));
    child.stdin.on("error", () => {}); // the prober may be gone before its input is written
    child.stdin.end(p.protocol === "UDP" ? "x\n" : "");
  });
}

const POD_CIDR = "10.97.8.0/24";
const allReady = (): DescribeOptions => ({ failClosed: { podCidr: POD_CIDR, ready: [...ips.values()] } });
const nodeNft = (...args: string[]) => execIn(node.ns, ["nft", ...args]);
const flushConntrack = () => exec(["nsenter", `--net=${netnsPath(node.ns)}`, "conntrack", "-F"], { allowFailure: true });

// One programmed table for all the cases: the first case replaces the table,
// every later case and step is applied as a diff of the previous one (so the
// cases also exercise the diff on a few dozen real changes).
const table = new PolicyTable(node.ns);
const modes: string[] = [];

async function program(state: ClusterState, opts: DescribeOptions = allReady()): Promise<void> {
  const r = await table.apply(describeNode(compileNode(state, state.pods), opts));
  modes.push(r.mode);
  await flushConntrack();
}

/**
 * Probes every scored cell at once; cells that disagree are probed again (up
 * to three rounds, as the case format allows): socat's forking UDP server can miss
 * a datagram when seventy arrive together.
 */
async function mismatches(probes: Probe[]): Promise<string[]> {
  let pending = probes.filter((p) => !p.loopback);
  for (let round = 0; round < 3 && pending.length > 0; round++) {
    const got = await Promise.all(pending.map(probe));
    pending = pending.filter((p, i) => got[i] !== p.expect);
  }
  return pending.map((p) => `${p.from} -> ${p.to} ${p.protocol}/${p.port}: expected ${p.expect}`);
}

const applyAction = (state: ClusterState, a: Action) => applyToState(state, a, podIp);

describe("NetworkPolicy compiled to nftables, probed for real (Twill's conformance cases)", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const state: ClusterState = { ...modelObjects(model, podIp), policies: [] };
      for (const p of c.policies) applyAction(state, { action: "apply", policy: p });
      await program(state);
      const bad = await mismatches(c.probes);
      for (const step of c.steps ?? []) {
        for (const a of step.actions) applyAction(state, a);
        await program(state);
        bad.push(...(await mismatches(step.probes)).map((m) => `[${step.description}] ${m}`));
      }
      expect(bad).toEqual([]);
    });
  }
});

describe("the table in the kernel changes by diffs, fails closed, and survives a restart", () => {
  const base = (): ClusterState => ({ ...modelObjects(model, podIp), policies: [] });
  const denyIngress = (ns: string, app: string) => ({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "deny", namespace: ns },
    spec: { podSelector: { matchLabels: { app } }, policyTypes: ["Ingress"] },
  });
  const tcp80 = (from: string, to: string, expect: boolean): Probe => ({ from, to, port: 80, protocol: "TCP", expect });
  const forwardHandles = async () => (await nodeNft("-a", "list", "chain", "inet", TABLE, "forward")).stdout.match(/# handle \d+/g);

  it("every case after the first was applied as a diff, never a whole replace", () => {
    expect(modes[0]).toBe("replace");
    expect(modes.slice(1).filter((m) => m === "replace")).toEqual([]);
    const programs = cases.reduce((n, c) => n + 1 + (c.steps?.length ?? 0), 0);
    expect(modes.filter((m) => m === "diff").length).toBe(programs - 1);
  });

  it("a policy added as a diff flips a probe's verdict without rewriting the table", async () => {
    const open = base();
    await program(open);
    expect(await mismatches([tcp80("beta/api", "alpha/web", true)])).toEqual([]);
    const before = await forwardHandles();
    const closed = base();
    closed.policies = [denyIngress("alpha", "web")];
    const tx = diffTransaction(table.current(), describeNode(compileNode(closed, closed.pods), allReady()));
    expect(tx).not.toMatch(/table|flush chain inet \S+ forward/);
    await program(closed);
    expect(await mismatches([tcp80("beta/api", "alpha/web", false), tcp80("beta/api", "alpha/api", true)])).toEqual([]);
    // The base chain kept its rules (same handles): only sets, maps and the pod's chain changed.
    expect(await forwardHandles()).toEqual(before);
    await program(open);
    expect(await mismatches([tcp80("beta/api", "alpha/web", true)])).toEqual([]);
  });

  it("fails closed: a pod whose policy state is not programmed talks to nobody until it is", async () => {
    const state = base();
    const notReady = [...ips.values()].filter((ip) => ip !== podIp("gamma/db"));
    await program(state, { failClosed: { podCidr: POD_CIDR, ready: notReady } });
    expect(await mismatches([tcp80("gamma/db", "alpha/web", false), tcp80("alpha/web", "gamma/db", false), tcp80("alpha/web", "beta/web", true)])).toEqual([]);
    await program(state);
    expect(await mismatches([tcp80("gamma/db", "alpha/web", true), tcp80("alpha/web", "gamma/db", true)])).toEqual([]);
  });

  it("a restarted daemon leaves the old table in force and replaces it atomically", async () => {
    const closed = base();
    closed.policies = [denyIngress("beta", "db")];
    await program(closed);
    // The daemon "exits": nothing removes the table, so the policy still holds.
    expect(await mismatches([tcp80("alpha/web", "beta/db", false)])).toEqual([]);
    const restarted = new PolicyTable(node.ns);
    const r = await restarted.apply(describeNode(compileNode(closed, closed.pods), allReady()));
    expect(r.mode).toBe("replace");
    await flushConntrack();
    expect(await mismatches([tcp80("alpha/web", "beta/db", false), tcp80("alpha/web", "beta/api", true)])).toEqual([]);
    expect((await nodeNft("list", "tables")).stdout.match(new RegExp(`table inet ${TABLE}$`, "gm"))).toHaveLength(1);
  });

  it("drops a packet from a pod's veth whose source address belongs to another pod (anti-spoofing)", async () => {
    await program({ ...base(), policies: [] });
    const [a, b, c] = ["alpha/web", "alpha/api", "alpha/db"];
    // Does c see an ICMP echo from `src`, sent by a?
    const seenAtC = async (src: string): Promise<boolean> => {
      const capture = execIn(podNs.get(c)!, ["timeout", "4", "tcpdump", "-ni", "eth0", "-c", "1", `icmp[icmptype] == icmp-echo and src host ${src}`], { allowFailure: true });
      await new Promise((r) => setTimeout(r, 1000));
      await execIn(podNs.get(a)!, ["ping", "-c", "2", "-W", "1", "-I", src, podIp(c)], { allowFailure: true });
      return (await capture).stdout.includes(`${src} >`);
    };
    expect(await seenAtC(podIp(a))).toBe(true);
    await execIn(podNs.get(a)!, ["ip", "addr", "add", `${podIp(b)}/32`, "dev", "eth0"]);
    try {
      expect(await seenAtC(podIp(b))).toBe(false);
    } finally {
      await execIn(podNs.get(a)!, ["ip", "addr", "del", `${podIp(b)}/32`, "dev", "eth0"]);
    }
  });
});
