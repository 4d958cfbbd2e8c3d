import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { masqueradeRuleset } from "../../daemon/kernel/masquerade.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { addNetns, deleteNetns, execIn } from "../../lib/kernel/netns.ts";
import type { MasqueradeAnswer, MasqueradeRequest } from "../support/masquerade-runner.ts";
import { startRunnerIn, type NamespaceRunner } from "../support/namespace-runner.ts";

// Twill's masquerade table with real nftables and a real VXLAN tunnel, in
// namespaces of this file's own: a node (underlay 192.0.2.1, pod CIDR
// 10.244.1.0/24) with one pod, a peer node (192.0.2.2, 10.244.2.0/24) with
// one pod that serves as a Service endpoint, and in the node a table of the
// test's standing in for kube-proxy: ClusterIP 10.96.0.10:8472 → that pod.

const ID = randomBytes(3).toString("hex");
const NS = { node: `twmq${ID}n`, peer: `twmq${ID}p`, pod: `twmq${ID}a`, endpoint: `twmq${ID}e` };
const CLUSTER_IP = "10.96.0.10";
const ENDPOINT = "10.244.2.2";
const PORT = 8472;

const want: MasqueradeRequest = { enabled: true, clusterCIDRs: ["10.244.0.0/16"], tunnels: [{ address: "192.0.2.1", port: PORT }], trustMemory: false };
/** A pass woken by a cluster event: it trusts what the last verifying pass found. */
const eventPass: MasqueradeRequest = { ...want, trustMemory: true };

let runner: NamespaceRunner<MasqueradeRequest, MasqueradeAnswer>;
const runnerScript = join(import.meta.dirname, "../support/masquerade-runner.ts");

const ipIn = (ns: string, ...args: string[]) => exec(["ip", "-n", ns, ...args]);
const nftIn = (ns: string, args: string[], input?: string) => execIn(ns, ["nft", ...args], input === undefined ? {} : { input });
const listing = async () => (await nftIn(NS.node, ["list", "table", "ip", "twill-nat"])).stdout;

/** Each node: an underlay veth, a VXLAN device with the other as its one peer, and a pod on a veth. */
async function build(): Promise<void> {
  for (const ns of Object.values(NS)) await addNetns(ns);
  await ipIn(NS.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", NS.peer);
  const node = { ns: NS.node, ul: "192.0.2.1", net: 1, mac: "02:00:00:00:01:01", pod: NS.pod };
  const peer = { ns: NS.peer, ul: "192.0.2.2", net: 2, mac: "02:00:00:00:02:01", pod: NS.endpoint };
  for (const [me, other] of [[node, peer], [peer, node]] as const) {
    await ipIn(me.ns, "addr", "add", `${me.ul}/24`, "dev", "eth0");
    await ipIn(me.ns, "link", "set", "eth0", "up");
    await ipIn(me.ns, "link", "add", "twill.vxlan", "address", me.mac, "type", "vxlan", "id", "1", "local", me.ul, "dstport", String(PORT), "dev", "eth0", "nolearning");
    await ipIn(me.ns, "addr", "add", `10.244.${me.net}.0/32`, "dev", "twill.vxlan");
    await ipIn(me.ns, "link", "set", "twill.vxlan", "up");
    await ipIn(me.ns, "neigh", "add", `10.244.${other.net}.0`, "lladdr", other.mac, "dev", "twill.vxlan", "nud", "permanent");
    await exec(["bridge", "-n", me.ns, "fdb", "append", other.mac, "dev", "twill.vxlan", "dst", other.ul, "self", "permanent"]);
    await ipIn(me.ns, "route", "add", `10.244.${other.net}.0/24`, "via", `10.244.${other.net}.0`, "dev", "twill.vxlan", "onlink");
    await ipIn(me.ns, "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", me.pod);
    await ipIn(me.ns, "addr", "add", `10.244.${me.net}.1/24`, "dev", "vpod");
    await ipIn(me.ns, "link", "set", "vpod", "up");
    await ipIn(me.pod, "addr", "add", `10.244.${me.net}.2/24`, "dev", "eth0");
    await ipIn(me.pod, "link", "set", "eth0", "up");
    await ipIn(me.pod, "route", "add", "default", "via", `10.244.${me.net}.1`);
    await execIn(me.ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  }
  // The ClusterIP is nobody's address: untranslated, it leaves by the default route and is lost.
  await ipIn(NS.node, "route", "add", "default", "via", "192.0.2.2");
}

/** kube-proxy's part: DNAT in tables of its own, for pods (prerouting) and host processes (output). */
const KUBE_PROXY_STANDIN = `table ip kp-standin {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${CLUSTER_IP} udp dport ${PORT} dnat to ${ENDPOINT}
  }
  chain out {
    type nat hook output priority -100; policy accept;
    ip daddr ${CLUSTER_IP} udp dport ${PORT} dnat to ${ENDPOINT}
  }
}
`;

/** Counts the tunnel's outer packets (after the raw hooks), tracked or not. */
const TUNNEL_COUNTERS = `table ip tunnel-counters {
  chain pre {
    type filter hook prerouting priority filter; policy accept;
    ip daddr 192.0.2.1 udp dport ${PORT} ct state untracked counter comment "in-untracked"
    ip daddr 192.0.2.1 udp dport ${PORT} ct state != untracked counter comment "in-tracked"
  }
  chain out {
    type filter hook output priority filter; policy accept;
    ip daddr 192.0.2.2 udp dport ${PORT} ct state untracked counter comment "out-untracked"
    ip daddr 192.0.2.2 udp dport ${PORT} ct state != untracked counter comment "out-tracked"
  }
}
`;

async function tunnelCounters(): Promise<Record<string, number>> {
  const text = (await nftIn(NS.node, ["list", "table", "ip", "tunnel-counters"])).stdout;
  return Object.fromEntries([...text.matchAll(/counter packets (\d+) bytes \d+ comment "([\w-]+)"/g)].map((m) => [m[2]!, Number(m[1])]));
}

/** Sends `token` from namespace `from` to CLUSTER_IP:PORT (a few times: UDP) and returns what the endpoint received ("" if nothing within 3 s). */
async function sendToService(from: string, token: string): Promise<string> {
  const received = execIn(NS.endpoint, ["timeout", "3", "socat", "-u", `UDP4-RECVFROM:${PORT}`, "STDOUT"], { allowFailure: true });
  let done = false;
  void received.finally(() => (done = true));
  for (let i = 0; i < 50 && !done; i++) {
    if ((await execIn(NS.endpoint, ["ss", "-Hlun", "sport", "=", `:${PORT}`])).stdout.trim()) break;
    await sleep(20);
  }
  for (let i = 0; i < 3 && !done; i++) {
    await execIn(from, ["socat", "-u", "STDIN", `UDP4-SENDTO:${CLUSTER_IP}:${PORT}`], { input: token });
    await sleep(200);
  }
  return (await received).stdout;
}

const conntrack = async () => (await execIn(NS.node, ["conntrack", "-L"], { allowFailure: true })).stdout;

beforeAll(async () => {
  try {
    await build();
  } catch (err) {
    for (const ns of Object.values(NS)) await deleteNetns(ns);
    throw err;
  }
  runner = startRunnerIn(NS.node, runnerScript);
});

afterAll(async () => {
  await runner?.close();
  for (const ns of Object.values(NS)) await deleteNetns(ns);
});

describe("the overlay's conntrack exemption", () => {
  it("a pod's UDP datagram to a ClusterIP on the VXLAN port is tracked, DNATed by kube-proxy's table and reaches the endpoint through the tunnel; the tunnel's own packets stay untracked", async () => {
    expect(await runner.ask(want)).toEqual({ changes: 1 });
    await nftIn(NS.node, ["-f", "-"], KUBE_PROXY_STANDIN + TUNNEL_COUNTERS);
    const token = `from-pod-${ID}`;
    expect(await sendToService(NS.pod, token)).toBe(token);
    const tracked = await conntrack();
    expect(tracked).toMatch(new RegExp(`src=10\\.244\\.1\\.2 dst=${CLUSTER_IP} sport=\\d+ dport=${PORT} .*src=${ENDPOINT} dst=10\\.244\\.1\\.2 sport=${PORT}`));
    // Replies come back through the tunnel, so it carries packets both ways.
    await execIn(NS.pod, ["ping", "-c", "2", "-i", "0.2", "-W", "1", ENDPOINT]);
    const c = await tunnelCounters();
    expect(c["out-untracked"]).toBeGreaterThan(0);
    expect(c["in-untracked"]).toBeGreaterThan(0);
    expect(c["out-tracked"]).toBe(0);
    expect(c["in-tracked"]).toBe(0);
    expect(await conntrack()).not.toContain(`dst=192.0.2.2 sport`);
  });

  it("a host process's datagram to that ClusterIP (a hostNetwork client, sent from the underlay address) is DNATed too", async () => {
    const token = `from-host-${ID}`;
    expect(await sendToService(NS.node, token)).toBe(token);
    expect(await conntrack()).toMatch(new RegExp(`src=192\\.0\\.2\\.1 dst=${CLUSTER_IP} sport=\\d+ dport=${PORT} .*src=${ENDPOINT} dst=192\\.0\\.2\\.1 sport=${PORT}`));
  });
});

describe("masquerade table healing", () => {
  it("the kernel lists the table exactly as Twill writes it (what lets a verifying pass, and a restarted daemon, compare the two as they stand)", async () => {
    expect(await listing()).toBe(masqueradeRuleset(want.clusterCIDRs, want.tunnels));
  });

  it("a verifying pass with nothing changed reports 0 and leaves the rules as they are (same handles)", async () => {
    const before = (await nftIn(NS.node, ["-a", "list", "table", "ip", "twill-nat"])).stdout;
    expect(await runner.ask(want)).toEqual({ changes: 0 });
    expect(await runner.ask(eventPass)).toEqual({ changes: 0 });
    expect((await nftIn(NS.node, ["-a", "list", "table", "ip", "twill-nat"])).stdout).toBe(before);
  });

  const deleteNotrackOut = async () => {
    const chain = (await nftIn(NS.node, ["-a", "list", "chain", "ip", "twill-nat", "overlay-out"])).stdout;
    const handle = /notrack # handle (\d+)/.exec(chain)![1]!;
    return ["delete", "rule", "ip", "twill-nat", "overlay-out", "handle", handle];
  };
  const drifts: [string, () => Promise<string[]>][] = [
    ["a chain flushed by hand", async () => ["flush", "chain", "ip", "twill-nat", "postrouting"]],
    ["a rule deleted by hand", deleteNotrackOut],
    ["a foreign rule added to its chain", async () => ["add", "rule", "ip", "twill-nat", "postrouting", "ip", "daddr", "203.0.113.7", "accept"]],
    ["a chain deleted by hand", async () => ["delete", "chain", "ip", "twill-nat", "overlay-in"]],
  ];
  it.each(drifts)("rewrites the table after %s on the next verifying pass (event passes trust memory)", async (_, drift) => {
    const wanted = await listing();
    await nftIn(NS.node, await drift());
    expect(await listing()).not.toBe(wanted);
    expect(await runner.ask(eventPass)).toEqual({ changes: 0 });
    expect(await runner.ask(want)).toEqual({ changes: 1 });
    expect(await listing()).toBe(wanted);
    expect(await runner.ask(want)).toEqual({ changes: 0 });
  });

  it("a restarted process finds its table right and rewrites nothing; a chain flushed while it was down, it rewrites", async () => {
    const before = (await nftIn(NS.node, ["-a", "list", "table", "ip", "twill-nat"])).stdout;
    await runner.close();
    runner = startRunnerIn(NS.node, runnerScript);
    expect(await runner.ask(want)).toEqual({ changes: 0 });
    expect((await nftIn(NS.node, ["-a", "list", "table", "ip", "twill-nat"])).stdout).toBe(before);
    await runner.close();
    const wanted = await listing();
    await nftIn(NS.node, ["flush", "chain", "ip", "twill-nat", "postrouting"]);
    runner = startRunnerIn(NS.node, runnerScript);
    expect(await runner.ask(want)).toEqual({ changes: 1 });
    expect(await listing()).toBe(wanted);
  });

  it("a table that nft lists otherwise than Twill writes it (several CIDRs, which nft sorts) is written once, not on every pass, and still heals", async () => {
    const unsorted: MasqueradeRequest = { ...want, clusterCIDRs: ["10.245.0.0/16", "10.244.0.0/16"] };
    expect(await runner.ask(unsorted)).toEqual({ changes: 1 });
    const written = await listing();
    expect(written).not.toBe(masqueradeRuleset(unsorted.clusterCIDRs, unsorted.tunnels));
    expect(await runner.ask(unsorted)).toEqual({ changes: 0 });
    await nftIn(NS.node, ["flush", "chain", "ip", "twill-nat", "postrouting"]);
    expect(await runner.ask(unsorted)).toEqual({ changes: 1 });
    expect(await listing()).toBe(written);
    expect(await runner.ask(want)).toEqual({ changes: 1 });
  });

  it("masquerade turned off removes the table, once", async () => {
    const off = { ...want, enabled: false };
    expect(await runner.ask(off)).toEqual({ changes: 1 });
    expect((await nftIn(NS.node, ["list", "tables"])).stdout).not.toContain("twill-nat");
    expect(await runner.ask(off)).toEqual({ changes: 0 });
  });
});
