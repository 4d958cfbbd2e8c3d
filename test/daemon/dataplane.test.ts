import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addNetns, deleteNetns, execIn } from "../../lib/kernel/netns.ts";
import { createPod } from "../../lab/cluster.ts";
import { startDaemon } from "../../lab/daemons.ts";
import { addNode, commandLine, pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { controlPlaneNs, nodeIp, underlayNs } from "../../lab/names.ts";
import { startIn } from "../../lab/process.ts";
import { deleteNodeObject, eventually, kernelView, routesOf, tcpPeerAddress, unreachablePairs, waitApiserver } from "./helpers.ts";

// The node daemon in a lab of its own (these tests stop the apiserver and
// kill daemons, which the shared lab's other users must not see).

let lab: RunningLab;
beforeAll(async () => {
  lab = await startLab({ nodes: 3, podsPerNode: 2, backend: "vxlan" });
});
afterAll(() => lab?.close());

const node = (i: number) => lab.state.nodes[i - 1]!;
const podOn = (n: string, j = 1) => lab.state.pods.find((p) => p.name === `${n}-pod${j}`)!;

describe("vxlan backend", () => {
  it("connects every pod to every other pod across nodes (ICMP)", async () => {
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
  });

  it("carries TCP across nodes with the pod's own source address (no NAT between pods)", async () => {
    const seen = await tcpPeerAddress(podOn("node1"), podOn("node2").ns, podOn("node2").ip, 7101);
    expect(seen).toBe(podOn("node1").ip);
  });

  it("masquerades pod traffic leaving the cluster CIDR with the node's address", async () => {
    const outside = `${lab.state.name}-out`;
    await addNetns(outside);
    try {
      const ul = underlayNs(lab.state.name);
      await execIn(ul, ["ip", "link", "add", "out", "type", "veth", "peer", "name", "eth0", "netns", outside]);
      await execIn(ul, ["ip", "link", "set", "out", "master", "br0", "up"]);
      await execIn(outside, ["ip", "addr", "add", "172.30.0.250/24", "dev", "eth0"]);
      await execIn(outside, ["ip", "link", "set", "eth0", "up"]);
      const seen = await tcpPeerAddress(podOn("node1"), outside, "172.30.0.250", 7102);
      expect(seen).toBe(node(1).ip);
    } finally {
      await deleteNetns(outside);
    }
  });

  it("writes the node file with the underlay MTU minus VXLAN's 50 bytes, and sets the device to it", async () => {
    const file = JSON.parse(readFileSync(node(1).nodeFile, "utf8"));
    expect(file).toMatchObject({ version: 1, nodeName: "node1", podCIDRs: [node(1).podCIDR], mtu: 1450, clusterCIDRs: ["10.244.0.0/16"] });
    const mtu = (await execIn(node(1).ns, ["cat", "/sys/class/net/twill.vxlan/mtu"])).stdout.trim();
    expect(mtu).toBe("1450");
  });
});

describe("MTU", () => {
  it("follows the underlay: a smaller underlay MTU lowers the node file's pod MTU and the device's", async () => {
    const n = node(2);
    await execIn(n.ns, ["ip", "link", "set", "eth0", "mtu", "1400"]);
    try {
      await eventually(async () => JSON.parse(readFileSync(n.nodeFile, "utf8")).mtu === 1350, "the node file to say 1350");
      expect((await execIn(n.ns, ["cat", "/sys/class/net/twill.vxlan/mtu"])).stdout.trim()).toBe("1350");
    } finally {
      await execIn(n.ns, ["ip", "link", "set", "eth0", "mtu", "1500"]);
    }
    await eventually(async () => JSON.parse(readFileSync(n.nodeFile, "utf8")).mtu === 1450, "the node file to return to 1450");
  });
});

describe("healing", () => {
  it("restores a route deleted by hand and a deleted VXLAN device", async () => {
    const ns = node(1).ns;
    const cidr2 = node(2).podCIDR;
    await execIn(ns, ["ip", "route", "del", cidr2]);
    await eventually(async () => (await routesOf(ns)).includes(cidr2), "the route to be restored");
    await execIn(ns, ["ip", "link", "del", "twill.vxlan"]);
    await eventually(async () => (await unreachablePairs([podOn("node1"), podOn("node2"), podOn("node3")])).length === 0, "connectivity to return after the device was deleted");
  });

  it("restores its masquerade table deleted by hand, and a chain of it flushed by hand (event passes trust memory; resync passes read the kernel)", async () => {
    const ns = node(1).ns;
    const nat = async () => (await execIn(ns, ["nft", "list", "table", "ip", "twill-nat"], { allowFailure: true })).stdout;
    await execIn(ns, ["nft", "delete", "table", "ip", "twill-nat"]);
    await eventually(async () => (await nat()).includes("masquerade"), "the masquerade table to be restored");
    // The table's comment (its content hash) survives a flush: only its rules are gone.
    await execIn(ns, ["nft", "flush", "chain", "ip", "twill-nat", "postrouting"]);
    expect(await nat()).not.toContain("masquerade");
    await eventually(async () => (await nat()).includes("masquerade"), "the flushed postrouting chain to be restored");
  });

  it("removes a stale route Twill owns that no node needs, and leaves routes it does not own alone", async () => {
    const ns = node(1).ns;
    await execIn(ns, ["ip", "route", "add", "10.244.200.0/24", "via", node(2).ip, "proto", "211"]);
    await execIn(ns, ["ip", "route", "add", "192.0.2.0/24", "via", node(2).ip]);
    await eventually(async () => !(await routesOf(ns)).includes("10.244.200.0/24"), "the stale route to go");
    expect((await execIn(ns, ["ip", "route"])).stdout).toContain("192.0.2.0/24");
  });
});

describe("cluster changes", () => {
  it("a node that joins becomes reachable; deleted, its routes, FDB and neighbours disappear everywhere", async () => {
    const n4 = await addNode(lab, 4);
    const pod4 = await createPod(lab.kc, lab.state.name, n4, "node4-pod1");
    try {
      await eventually(async () => (await unreachablePairs([podOn("node1"), podOn("node2"), pod4])).length === 0, "node4's pod to be reachable");
      const views = await Promise.all([1, 2, 3].map((i) => kernelView(node(i).ns)));
      for (const v of views) expect(v).toContain(n4.podCIDR);
      expect(views[0]).toContain(n4.ip); // the FDB entry points at node4's underlay address

      await deleteNodeObject(lab, "node4");
      for (const i of [1, 2, 3]) {
        await eventually(async () => {
          const v = await kernelView(node(i).ns);
          return !v.includes(n4.podCIDR) && !v.includes(n4.ip) && !v.includes(n4.podCIDR.replace("/24", ""));
        }, `node${i} to forget node4`);
      }
    } finally {
      await deleteNetns(pod4.ns);
      await deleteNetns(n4.ns);
    }
  });
  it("Nodes claiming another node's VTEP MAC or pod CIDR are left out, one line each per daemon; the owner's FDB entry and route never move", async () => {
    const mac2 = (await execIn(node(2).ns, ["cat", "/sys/class/net/twill.vxlan/address"])).stdout.trim();
    const owner = async () => {
      const fdb = (await execIn(node(1).ns, ["bridge", "fdb", "show", "dev", "twill.vxlan"])).stdout.split("\n").filter((l) => l.startsWith(mac2));
      const route = (await routesOf(node(1).ns)).split("\n").filter((l) => l.startsWith(node(2).podCIDR));
      return [...fdb, ...route];
    };
    const before = await owner();
    expect(before.join("\n")).toContain(`dst ${node(2).ip}`);
    expect(before.join("\n")).toContain(`${node(2).podCIDR} via ${node(2).podCIDR.replace("/24", "")} dev twill.vxlan`);
    const logMark = readFileSync(join(node(1).dir, "daemon.log"), "utf8").length;
    const core = lab.kc.makeApiClient(CoreV1Api);
    // Upper case on purpose: the clash is found whatever the spelling.
    await core.createNode({ body: { metadata: { name: "zz-mac", annotations: { "twill.dev/vtep-mac": mac2.toUpperCase(), "twill.dev/public-ip": nodeIp(9) } }, spec: { podCIDR: "10.244.250.0/24", podCIDRs: ["10.244.250.0/24"] } } });
    await core.createNode({ body: { metadata: { name: "zz-cidr", annotations: { "twill.dev/vtep-mac": "02:00:00:00:99:01", "twill.dev/public-ip": nodeIp(8) } }, spec: { podCIDR: node(2).podCIDR, podCIDRs: [node(2).podCIDR] } } });
    try {
      const log = () => readFileSync(join(node(1).dir, "daemon.log"), "utf8").slice(logMark);
      await eventually(async () => log().includes("VTEP_MAC_CONFLICT") && log().includes("POD_CIDR_CONFLICT"), "node1 to report both clashes");
      // Two resync passes (5 s each) later: still one line each, and node2's entries never left.
      for (let t = 0; t < 12; t++) {
        expect(await owner()).toEqual(before);
        await new Promise((r) => setTimeout(r, 1000));
      }
      const lines = (code: string) => log().split("\n").filter((l) => l.includes(code));
      expect(lines("VTEP_MAC_CONFLICT")).toHaveLength(1);
      expect(lines("VTEP_MAC_CONFLICT")[0]).toContain(`node zz-mac's twill.dev/vtep-mac ${mac2} is already node ${node(2).name}'s VTEP MAC`);
      expect(lines("POD_CIDR_CONFLICT")).toHaveLength(1);
      expect(lines("POD_CIDR_CONFLICT")[0]).toContain(`node zz-cidr's pod CIDR ${node(2).podCIDR} overlaps node ${node(2).name}'s`);
      expect(await routesOf(node(1).ns)).not.toContain("10.244.250.0/24");
      expect(await unreachablePairs([podOn("node1"), podOn("node2")])).toEqual([]);
    } finally {
      await deleteNodeObject(lab, "zz-mac");
      await deleteNodeObject(lab, "zz-cidr");
    }
  });
});

describe("restarts and outages", () => {
  it("a daemon killed with SIGKILL and restarted loses no packet of a running flow and rewrites nothing", async () => {
    const [a, b] = [podOn("node1"), podOn("node2")];
    const before = await kernelView(node(1).ns);
    // 600 pings over ~6 s, while both ends' daemons are killed and restarted.
    const flow = execIn(a.ns, ["ping", "-q", "-i", "0.01", "-c", "600", "-W", "1", b.ip], { allowFailure: true });
    await new Promise((r) => setTimeout(r, 500));
    for (const i of [1, 2]) {
      for (const pid of await pidsIn(node(i).ns, "daemon/main.ts")) process.kill(pid, "SIGKILL");
    }
    const logMark = [1, 2].map((i) => readFileSync(join(node(i).dir, "daemon.log"), "utf8").length);
    for (const i of [1, 2]) startDaemon(node(i), lab.state.daemonFiles!);
    const out = (await flow).stdout;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![2])).toBe(Number(m![1]));
    // Let the restarted daemons finish a reconcile, then check they changed nothing.
    await eventually(async () => [1, 2].every((i, k) => readFileSync(join(node(i).dir, "daemon.log"), "utf8").slice(logMark[k]).includes("twill daemon started")), "restarted daemons");
    await new Promise((r) => setTimeout(r, 1500));
    for (const [k, i] of [1, 2].entries()) {
      const log = readFileSync(join(node(i).dir, "daemon.log"), "utf8").slice(logMark[k]);
      expect(log).not.toContain("dataplane reconciled");
    }
    expect(await kernelView(node(1).ns)).toBe(before);
  });

  it("with the apiserver stopped, connectivity is unchanged; after it returns, daemons resync without touching routes", async () => {
    const cp = controlPlaneNs(lab.state.name);
    const [pid] = await pidsIn(cp, "kube-apiserver");
    const argv = commandLine(pid!);
    const before = await Promise.all([1, 2, 3].map((i) => kernelView(node(i).ns)));
    process.kill(pid!, "SIGKILL");
    try {
      // Longer than a resync period: the daemons reconcile against their last view meanwhile.
      await new Promise((r) => setTimeout(r, 7000));
      expect(await unreachablePairs(lab.state.pods)).toEqual([]);
    } finally {
      startIn(cp, "kube-apiserver", argv, join(lab.state.dir, "logs/kube-apiserver.log"));
    }
    await eventually(async () => {
      const logs = [1, 2, 3].map((i) => readFileSync(join(node(i).dir, "daemon.log"), "utf8"));
      return logs.every((l) => l.includes("node watch failed"));
    }, "daemons to notice the outage");
    // After the apiserver is back, a resync keeps everything as it was.
    await waitApiserver(lab);
    await new Promise((r) => setTimeout(r, 6000));
    const after = await Promise.all([1, 2, 3].map((i) => kernelView(node(i).ns)));
    expect(after).toEqual(before);
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
  });
});



describe("configuration that contradicts the cluster", () => {
  it("a cluster CIDR that does not contain the node's pod CIDR: one clear log line, not ready, nothing touched", async () => {
    const n = node(1);
    const before = await kernelView(n.ns);
    const cfgPath = join(lab.state.dir, "wrong-cidr.yaml");
    writeFileSync(cfgPath, "clusterCIDR: 10.99.0.0/16\nbackend: host-gw\n");
    const nodeFile = join(lab.state.dir, "wrong-cidr-node.json");
    const log = join(lab.state.dir, "wrong-cidr.log");
    const p = startIn(n.ns, "misconfigured daemon", [process.execPath, join(import.meta.dirname, "../../daemon/main.ts"), "--config", cfgPath, "--kubeconfig", lab.state.daemonFiles!.kubeconfig, "--node-name", n.name, "--node-file", nodeFile, "--health-port", "9199", "--resync-seconds", "1"], log);
    try {
      await eventually(async () => readFileSync(log, "utf8").includes("CONFIG_INVALID"), "the configuration error to be logged");
      await new Promise((r) => setTimeout(r, 2500));
      const lines = readFileSync(log, "utf8").trim().split("\n").filter((l) => l.includes("CONFIG_INVALID"));
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!).msg).toContain(`does not contain this node's pod CIDR ${n.podCIDR}`);
      const ready = await execIn(n.ns, [process.execPath, "--input-type=module", "-e", "console.log((await fetch('http://127.0.0.1:9199/readyz')).status)"]);
      expect(ready.stdout.trim()).toBe("503");
      expect(existsSync(nodeFile)).toBe(false);
      expect(await kernelView(n.ns)).toBe(before);
    } finally {
      process.kill(p.pid, "SIGKILL");
    }
  });
});

describe("cleanup", () => {
  it("removes everything Twill put on a node: device, routes, veths, nft tables, files", async () => {
    const n = node(3);
    const { execIn: run } = await import("../../lib/kernel/netns.ts");
    for (const pid of await pidsIn(n.ns, "daemon/main.ts")) process.kill(pid, "SIGKILL");
    const r = await run(n.ns, [process.execPath, join(import.meta.dirname, "../../daemon/cleanup.ts"), "--node-file", n.nodeFile, "--ipam-dir", n.ipamDir, "--cni-bin-dir", join(n.dir, "bin"), "--cni-conf-dir", join(n.dir, "conf"), "--wireguard-key-file", join(n.dir, "wireguard", "private.key")]);
    expect(r.stderr).toContain("removed Twill from this node");
    const links = (await run(n.ns, ["ip", "-o", "link"])).stdout;
    expect(links).not.toMatch(/twill\.vxlan|twl[0-9a-f]{11}/);
    expect((await run(n.ns, ["ip", "route", "show", "proto", "211"])).stdout).toBe("");
    expect((await run(n.ns, ["ip", "route", "show", "proto", "212"])).stdout).toBe("");
    expect((await run(n.ns, ["nft", "list", "tables"])).stdout).not.toContain("twill");
    expect(existsSync(n.nodeFile)).toBe(false);
    expect(existsSync(n.ipamDir)).toBe(false);
  });
});
