import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { buildReference, type Reference } from "../../bench/support/handbuilt.ts";
import { execIn } from "../../lib/kernel/netns.ts";

// bench:dataplane's upper-bound reference: with bpf-fastpath.ts attached, an
// established TCP stream crosses the hand-built nodes without meeting their
// netfilter forward hook (only handshake and teardown do); without it,
// every segment does. Real kernel, namespaces of the test's own.

/** Sends 200 MiB pod1 → pod2; returns segments node1 forwarded through netfilter and segments it sent on its underlay. */
async function stream(kind: Reference): Promise<{ received: number; netfilter: number; sent: number }> {
  const topo = await buildReference(kind, `tbf${randomBytes(3).toString("hex")}`);
  try {
    const node1 = topo.client.replace(/-p1$/, "-n1");
    await execIn(node1, ["nft", "add table ip probe; add chain ip probe fwdc { type filter hook forward priority 0; }; add rule ip probe fwdc ip daddr 10.251.2.2 counter"]);
    const before = await underlayTx(node1);
    await execIn(topo.server, ["sh", "-c", "nohup iperf3 -s -1 -p 5201 >/dev/null 2>&1 &"]);
    await new Promise((r) => setTimeout(r, 300));
    const out = await execIn(topo.client, ["iperf3", "-c", topo.serverIp, "-p", "5201", "-n", "200M", "-J"]);
    const received = (JSON.parse(out.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes;
    const counter = (await execIn(node1, ["nft", "list", "chain", "ip", "probe", "fwdc"])).stdout;
    return { received, netfilter: Number(/counter packets (\d+)/.exec(counter)![1]), sent: (await underlayTx(node1)) - before };
  } finally {
    await topo.destroy();
  }
}

async function underlayTx(ns: string): Promise<number> {
  return Number((await execIn(ns, ["cat", "/sys/class/net/eth0/statistics/tx_packets"])).stdout);
}

describe("bench reference: BPF fast path", () => {
  it("an established stream skips netfilter with the program attached, and meets it without", async () => {
    const fast = await stream("routes-nat-bpf");
    // The receiver's summary may stop short of the 200 MiB sent (its last interval races the end of the
    // test; 189 MiB seen on a loaded machine): most of the stream having arrived is what counts.
    expect(fast.received).toBeGreaterThan(150 * 1024 * 1024);
    expect(fast.sent).toBeGreaterThan(1000);
    expect(fast.netfilter).toBeLessThan(20);
    const slow = await stream("routes-nat");
    expect(slow.received).toBeGreaterThan(150 * 1024 * 1024);
    expect(slow.netfilter).toBeGreaterThan(1000);
  });
});
