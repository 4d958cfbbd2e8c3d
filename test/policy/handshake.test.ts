import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TABLE } from "../../daemon/policy/compile.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf } from "../cni/fixtures.ts";
import type { PolicyControllerSetup } from "../support/policy-controller-runner.ts";

// The CNI ADD ↔ daemon handshake with the real plugin binary and the daemon's
// policy controller serving the notice socket, in a node namespace of this
// file's own. The pods' statuses never get addresses here (no kubelet), so an
// address in `ready` can only have come from the plugin's notice, and it must
// be there the moment ADD returns.

const POD_CIDR = "10.96.7.0/24";
const node = new NodeFixture("tph");
const socket = () => join(node.dir, "daemon.sock");
const cniLog = () => join(node.dir, "cni.log");
let daemon: ChildProcess;
const daemonLines: string[] = [];

const pod = (name: string, uid: string, app: string): V1Pod => ({
  metadata: { name, namespace: "x", uid, labels: { app } },
  spec: { nodeName: node.ns, containers: [{ name: "c" }] },
  status: {},
});
const policies = [{ metadata: { name: "web", namespace: "x" }, spec: { podSelector: { matchLabels: { app: "web" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "api" } } }] }] } }] as unknown as V1NetworkPolicy[];
const namespaces: V1Namespace[] = [{ metadata: { name: "x" } }];

function writeNodeFile(dir: string, daemonSocket?: string, podCidr = POD_CIDR): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "node.json");
  writeFileSync(path, JSON.stringify({ version: 1, nodeName: node.ns, podCIDRs: [podCidr], mtu: 1450, clusterCIDRs: ["10.96.0.0/16"], ...(daemonSocket ? { daemonSocket } : {}) }));
  return path;
}

const args = (name: string, uid: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=${uid}`;

async function add(name: string, uid: string, extra: Record<string, unknown> = {}) {
  const p = await node.pod();
  const r = await runCni(node.ns, { command: "ADD", containerId: `c-${name}`, netns: p.path, ifname: "eth0", env: { CNI_ARGS: args(name, uid) }, stdin: twillConf(node, { logFile: cniLog(), ...extra }) });
  expect(r.code, r.stdout).toBe(0);
  return { ip: r.json.ips[0].address.split("/")[0] as string, pod: p };
}

/** The `ready` set's elements, read right away. */
async function ready(): Promise<string> {
  return (await execIn(node.ns, ["nft", "list", "set", "inet", TABLE, "ready"])).stdout;
}

/** One raw request line to the daemon's socket; its reply line. */
function ask(line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ path: socket() });
    let buf = "";
    c.setEncoding("utf8");
    c.on("connect", () => c.write(line));
    c.on("data", (d: string) => (buf += d));
    c.on("error", reject);
    c.on("close", () => resolve(JSON.parse(buf.split("\n")[0]!) as Record<string, unknown>));
  });
}

const logged = (pattern: RegExp) => readFileSync(cniLog(), "utf8").split("\n").filter((l) => pattern.test(l));

beforeAll(async () => {
  await node.start();
  writeNodeFile(node.dir, "daemon.sock");
  const setup: PolicyControllerSetup = {
    nodeName: node.ns,
    pods: [pod("web", "uid-web", "web"), pod("api", "uid-api", "api"), pod("gone", "uid-gone", "web")],
    namespaces,
    policies,
    podCidrs: [POD_CIDR],
    resyncSeconds: 60,
    socket: socket(),
  };
  daemon = spawn("ip", ["netns", "exec", node.ns, process.execPath, join(import.meta.dirname, "../support/policy-controller-runner.ts")], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: daemon.stdout! });
  const listening = new Promise<void>((resolve) => lines.on("line", (l) => (daemonLines.push(l), /pod notices/.test(l) && resolve())));
  daemon.stdin!.write(JSON.stringify(setup) + "\n");
  await listening;
}, 60_000);

afterAll(async () => {
  daemon?.stdin?.end();
  daemon?.kill();
  await node.stop();
});

describe("CNI ADD waits for the daemon to program the pod's policy", () => {
  it("the socket is root's alone", () => {
    expect(statSync(socket()).mode & 0o777).toBe(0o600);
  });

  it("ADD of a pod the daemon knows returns only once its address is in `ready`", async () => {
    for (const [name, uid] of [["web", "uid-web"], ["api", "uid-api"]] as const) {
      const { ip } = await add(name, uid);
      expect(await ready()).toContain(ip);
    }
    expect(logged(/"policyProgrammed":true/)).toHaveLength(2);
    // The pod's own policy elements came with it: web's rule admits api's (notice-learned) address.
    const table = (await execIn(node.ns, ["nft", "list", "table", "inet", TABLE])).stdout;
    expect(table).toMatch(/10\.96\.7\.\d+/);
  });

  it("a malformed notice gets NOTICE_INVALID, changes nothing, and the daemon keeps serving", async () => {
    const before = await ready();
    for (const line of ["not json\n", '{"version":1,"op":"add"}\n', JSON.stringify({ version: 1, op: "add", pod: { namespace: "x", name: "gone", uid: "uid-gone" }, containerId: "c1", ifname: "eth0", ips: ["10.1"] }) + "\n", "x".repeat(5000) + "\n"]) {
      const r = await ask(line);
      expect(r).toMatchObject({ ok: false, code: "NOTICE_INVALID" });
      expect(String(r.message)).not.toBe("");
    }
    // An address outside this node's pod CIDR is refused too.
    const outside = await ask(JSON.stringify({ version: 1, op: "add", pod: { namespace: "x", name: "gone", uid: "uid-gone" }, containerId: "c1", ifname: "eth0", ips: ["192.0.2.77"], waitMs: 1000 }) + "\n");
    expect(outside).toMatchObject({ ok: false, code: "ADDRESS_OUTSIDE_POD_CIDR" });
    expect(await ready()).toBe(before);
    expect(daemon.exitCode).toBeNull();
    const { ip } = await add("gone", "uid-gone");
    expect(await ready()).toContain(ip);
  });

  it("a notice for a pod the daemon never hears of is answered UNKNOWN_POD and ADD still succeeds", async () => {
    await add("stranger", "uid-stranger", { daemonTimeoutMs: 600 });
    expect(logged(/"code":"UNKNOWN_POD"/)).toHaveLength(1);
  });

  it("DEL makes the daemon forget the address", async () => {
    const p = await node.pod();
    const conf = twillConf(node, { logFile: cniLog() });
    const r = await runCni(node.ns, { command: "ADD", containerId: "c-del", netns: p.path, ifname: "eth0", env: { CNI_ARGS: args("web", "uid-web") }, stdin: conf });
    const ip = r.json.ips[0].address.split("/")[0] as string;
    expect(await ready()).toContain(ip);
    const d = await runCni(node.ns, { command: "DEL", containerId: "c-del", netns: p.path, ifname: "eth0", env: { CNI_ARGS: args("web", "uid-web") }, stdin: conf });
    expect(d.code, d.stdout).toBe(0);
    for (let i = 0; i < 50 && (await ready()).includes(ip); i++) await new Promise((res) => setTimeout(res, 100));
    expect(await ready()).not.toContain(ip);
  });
});

describe("ADD never fails because of the daemon", () => {
  it("with no daemon listening, ADD succeeds and logs a warning", async () => {
    const dir = join(node.dir, "nodaemon");
    const nodeFile = writeNodeFile(dir, "daemon.sock", "10.96.8.0/24");
    const p = await node.pod();
    const r = await runCni(node.ns, { command: "ADD", containerId: "c-nodaemon", netns: p.path, ifname: "eth0", env: { CNI_ARGS: args("web", "uid-web") }, stdin: twillConf(node, { nodeFile, logFile: cniLog(), ipam: { type: "twill-ipam", dataDir: join(dir, "ipam") } }) });
    expect(r.code, r.stdout).toBe(0);
    expect(r.json.ips).toHaveLength(1);
    const warn = logged(/"code":"NO_DAEMON"/);
    expect(warn).toHaveLength(1);
    expect(JSON.parse(warn[0]!)).toMatchObject({ level: 40, cmd: "ADD" });
  });

  it("with a daemon that never answers, ADD succeeds after its timeout and logs a warning", async () => {
    const dir = join(node.dir, "silent");
    const nodeFile = writeNodeFile(dir, "daemon.sock", "10.96.9.0/24");
    const server: Server = createServer(() => {});
    await new Promise<void>((res) => server.listen(join(dir, "daemon.sock"), res));
    try {
      const p = await node.pod();
      const r = await runCni(node.ns, { command: "ADD", containerId: "c-silent", netns: p.path, ifname: "eth0", env: { CNI_ARGS: args("web", "uid-web") }, stdin: twillConf(node, { nodeFile, logFile: cniLog(), daemonTimeoutMs: 300, ipam: { type: "twill-ipam", dataDir: join(dir, "ipam") } }) });
      expect(r.code, r.stdout).toBe(0);
      expect(logged(/"code":"TIMEOUT"/)).toHaveLength(1);
    } finally {
      server.close();
    }
  });
});
