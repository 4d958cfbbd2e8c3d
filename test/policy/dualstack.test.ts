import type { V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileNode, describeNode } from "../../daemon/policy/compile.ts";
import { PolicyTable } from "../../daemon/policy/nft.ts";
import type { ClusterState } from "../../daemon/policy/model.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf, writeNode } from "../cni/fixtures.ts";

// Dual-stack pods under NetworkPolicy: rules are compiled for IPv4, and a
// direction a policy isolates is closed for IPv6 (replies to the pod's own
// connections still pass); fail closed covers the IPv6 pod CIDR too. IPv6
// never becomes a way around a policy.

const node = new NodeFixture("tpd");
const table = new PolicyTable(node.ns);
const pods: { name: string; ns: string; v4: string; v6: string }[] = [];

beforeAll(async () => {
  await node.start();
  await execIn(node.ns, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
  writeNode(node, ["10.97.9.0/24", "fd97:9::/64"]);
  for (const name of ["a", "b"]) {
    const p = await node.pod();
    const r = await runCni(node.ns, { command: "ADD", containerId: `pd-${name}`, netns: p.path, ifname: "eth0", stdin: twillConf(node) });
    if (r.code !== 0) throw new Error(r.stdout);
    const [v4, v6] = r.json.ips.map((i: { address: string }) => i.address.split("/")[0]);
    pods.push({ name, ns: p.name, v4, v6 });
  }
}, 120_000);
afterAll(async () => {
  table.close();
  await node.stop();
});

function state(policies: V1NetworkPolicy[]): ClusterState {
  const objs: V1Pod[] = pods.map((p) => ({ metadata: { name: p.name, namespace: "x", labels: { app: p.name } }, spec: { containers: [] }, status: { podIP: p.v4, podIPs: [{ ip: p.v4 }, { ip: p.v6 }] } }));
  return { namespaces: [{ metadata: { name: "x" } }], pods: objs, policies };
}

async function program(policies: V1NetworkPolicy[], ready = pods): Promise<void> {
  const s = state(policies);
  await table.apply(describeNode(compileNode(s, s.pods), { failClosed: { podCidr: "10.97.9.0/24", ready: ready.map((p) => p.v4), podCidr6: "fd97:9::/64", ready6: ready.map((p) => p.v6) } }));
  await execIn(node.ns, ["conntrack", "-F"], { allowFailure: true });
}

const pings = async (from: string, to: string, six = false) => (await execIn(from, ["ping", ...(six ? ["-6"] : []), "-c", "1", "-W", "1", to], { allowFailure: true })).code === 0;
const denyIngressB: V1NetworkPolicy = { metadata: { name: "deny-b", namespace: "x" }, spec: { podSelector: { matchLabels: { app: "b" } }, policyTypes: ["Ingress"] } };

describe("dual-stack pods under NetworkPolicy", () => {
  it("without policies both families pass", async () => {
    await program([]);
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    expect([await pings(a.ns, b.v4), await pings(a.ns, b.v6, true)]).toEqual([true, true]);
  });

  it("an ingress-isolated pod is closed on IPv6 as on IPv4, and its own IPv6 connections still get replies", async () => {
    await program([denyIngressB]);
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    expect([await pings(a.ns, b.v4), await pings(a.ns, b.v6, true)]).toEqual([false, false]);
    expect([await pings(b.ns, a.v4), await pings(b.ns, a.v6, true)]).toEqual([true, true]);
  });

  it("fails closed on the IPv6 pod CIDR too", async () => {
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    await program([], [a]);
    expect([await pings(a.ns, b.v4), await pings(a.ns, b.v6, true)]).toEqual([false, false]);
    await program([]);
    expect(await pings(a.ns, b.v6, true)).toBe(true);
  });
});
