import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLab, type RunningLab } from "../../lab/lab.ts";
import type { DumpedLink } from "../../lib/netlink/link.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import type { NodeFile } from "../../lib/node-file.ts";

// BIG TCP: on an underlay that takes packets above 64 KiB, pods of a backend
// that does not encapsulate get veths that take them too, and a pod's TCP
// stream crosses the node in such packets. Through a tunnel, never.

const BIG = 196608;
const REPO = join(import.meta.dirname, "../..");

/** A device's limits as the kernel reports them (this iproute2 prints no IPv4 limits). */
async function limits(ns: string, dev: string): Promise<Pick<DumpedLink, "gso" | "gro">> {
  const script = `import { readLink } from ${JSON.stringify(join(REPO, "daemon/kernel/links.ts"))};
import { rtnl } from ${JSON.stringify(join(REPO, "daemon/kernel/netlink-socket.ts"))};
const l = await readLink(${JSON.stringify(dev)}, rtnl);
console.log(JSON.stringify({ gso: l.gso, gro: l.gro }));
rtnl.close();`;
  return JSON.parse((await execIn(ns, [process.execPath, "--input-type=module", "-e", script])).stdout) as Pick<DumpedLink, "gso" | "gro">;
}

/** The node's end of a pod's veth: the device its route to the pod leaves by. */
async function hostEnd(nodeNs: string, podIp: string): Promise<string> {
  return (JSON.parse((await execIn(nodeNs, ["ip", "-j", "route", "get", podIp])).stdout) as { dev: string }[])[0]!.dev;
}

/** Packets above 64 KiB that node `ns` forwards while pod `from` sends 64 MiB to pod `to` (an nft counter at the forward hook). */
async function bigPacketsForwarded(lab: RunningLab): Promise<number> {
  const [from, to] = lab.state.pods;
  const ns = lab.state.nodes[0]!.ns;
  await execIn(ns, ["nft", "-f", "-"], { input: "table inet twill_test_big {\n chain probe {\n  type filter hook forward priority -300; policy accept;\n  meta length > 65536 counter\n }\n}\n" });
  try {
    await execIn(to!.ns, ["sh", "-c", "nohup iperf3 -s -1 -p 5301 >/dev/null 2>&1 &"]);
    await new Promise((r) => setTimeout(r, 300));
    await execIn(from!.ns, ["iperf3", "-c", to!.ip, "-p", "5301", "-n", "64M", "-J"]);
    const out = JSON.parse((await execIn(ns, ["nft", "-j", "list", "table", "inet", "twill_test_big"])).stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] };
    const rule = out.nftables.find((o) => o.rule)!.rule!;
    return rule.expr.find((e) => e.counter)!.counter!.packets;
  } finally {
    await execIn(ns, ["nft", "delete", "table", "inet", "twill_test_big"], { allowFailure: true });
  }
}

describe("host-gw on a BIG TCP underlay", () => {
  let lab: RunningLab;
  beforeAll(async () => {
    lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "host-gw", underlayGso: BIG });
  });
  afterAll(() => lab?.close());

  it("writes the underlay's sizes into the node file, and new pods' veths take them at both ends", async () => {
    for (const n of lab.state.nodes) {
      const file = JSON.parse(readFileSync(n.nodeFile, "utf8")) as NodeFile;
      expect(file.gso).toEqual({ pod: { ipv4: BIG, ipv6: BIG }, host: { ipv4: BIG, ipv6: BIG } });
    }
    for (const p of lab.state.pods) {
      const node = lab.state.nodes.find((n) => n.name === p.node)!;
      expect(await limits(p.ns, "eth0")).toEqual({ gso: { ipv4: BIG, ipv6: BIG }, gro: { ipv4: BIG, ipv6: BIG } });
      expect(await limits(node.ns, await hostEnd(node.ns, p.ip))).toEqual({ gso: { ipv4: BIG, ipv6: BIG }, gro: { ipv4: BIG, ipv6: BIG } });
    }
  });

  it("a pod's TCP stream crosses the node in packets above 64 KiB", async () => {
    expect(await bigPacketsForwarded(lab)).toBeGreaterThan(0);
  });
});

describe("vxlan on a BIG TCP underlay", () => {
  let lab: RunningLab;
  beforeAll(async () => {
    lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", underlayGso: BIG });
  });
  afterAll(() => lab?.close());

  it("keeps pods at 64 KiB: a tunnelled packet's outer UDP length cannot hold more", async () => {
    const file = JSON.parse(readFileSync(lab.state.nodes[0]!.nodeFile, "utf8")) as NodeFile;
    expect(file.gso).toBeUndefined();
    expect((await limits(lab.state.pods[0]!.ns, "eth0")).gso).toEqual({ ipv4: 65536, ipv6: 65536 });
    expect(await bigPacketsForwarded(lab)).toBe(0);
  });
});
