import { describe, expect, it } from "vitest";
import { bgpBackend, type SpeakerLike } from "../../daemon/backends/bgp/bgp.ts";
import type { SpeakerEvents } from "../../daemon/bgp/speaker/speaker.ts";
import type { PeerConfig } from "../../daemon/bgp/speaker/config.ts";
import type { Route } from "../../daemon/bgp/rib/route.ts";
import type { ClusterView, NodeInfo } from "../../daemon/cluster/view.ts";
import { parseConfig } from "../../daemon/config.ts";
import { createLogger } from "../../lib/log.ts";

// The bgp backend's mapping from cluster view and learned routes to kernel
// state, with a stand-in for the speaker (the real one is exercised in
// backend-kernel.test.ts and the interop tests).

class FakeSpeaker implements SpeakerLike {
  peers = new Map<string, PeerConfig>();
  announced = new Set<string>();
  learned: Route[] = [];
  isConverged = false;
  async start() {}
  addPeer(cfg: PeerConfig) {
    this.peers.set(cfg.address, cfg);
  }
  removePeer(a: string) {
    this.peers.delete(a);
  }
  peerAddresses() {
    return [...this.peers.keys()];
  }
  announce(p: string) {
    this.announced.add(p);
  }
  withdraw(p: string) {
    this.announced.delete(p);
  }
  routes() {
    return this.learned;
  }
  converged() {
    return this.isConverged;
  }
}

const node = (name: string, ip: string, cidr: string): NodeInfo => ({ name, ip, podCIDRs: [cidr], annotations: {} });
const viewOf = (...nodes: NodeInfo[]): ClusterView => ({ nodes: new Map(nodes.map((n) => [n.name, n])), skipped: new Map() });
const a = node("a", "172.30.0.11", "10.244.1.0/24");
const b = node("b", "172.30.0.12", "10.244.2.0/24");
const c = node("c", "172.30.0.13", "10.244.3.0/24");
const local = { info: a, underlay: { dev: "eth0", address: "172.30.0.11", prefix: 24, mtu: 1500 } };
const log = createLogger({ name: "test", level: "silent" });
const learned = (prefix: string, nextHop: string): Route => ({ prefix, peer: nextHop, nextHop, attrs: {}, stale: false });

async function setup(opts: { restarting?: boolean; config?: string; now?: () => number } = {}) {
  const fake = new FakeSpeaker();
  const cfg = parseConfig(opts.config ?? "clusterCIDR: 10.244.0.0/16\nbackend: bgp\n");
  const backend = bgpBackend(cfg, { log, makeSpeaker: () => fake, routesInstalled: async () => opts.restarting ?? false, ...(opts.now ? { now: opts.now } : {}) });
  await backend.prepare(local);
  return { fake, backend };
}

describe("bgp backend (pure mapping)", () => {
  it("peers with every other node in AS 64512, announces its own pod CIDR and blackholes it", async () => {
    const { fake, backend } = await setup();
    const s = backend.desired(viewOf(a, b, c), local, 1500);
    expect([...fake.peers.values()]).toEqual([{ address: "172.30.0.12", asn: 64512, port: 179 }, { address: "172.30.0.13", asn: 64512, port: 179 }]);
    expect([...fake.announced]).toEqual(["10.244.1.0/24"]);
    expect(s.routes).toEqual([{ dst: "10.244.1.0/24", via: "", dev: "", onlink: false, blackhole: true }]);
    expect(backend.overhead).toBe(0);
  });

  it("learned routes become kernel routes via the next hop on the underlay; off-link next hops and our own block are left out", async () => {
    const { fake, backend } = await setup();
    fake.learned = [learned("10.244.2.0/24", "172.30.0.12"), learned("10.244.9.0/24", "192.0.2.1"), learned("10.244.1.0/24", "172.30.0.12")];
    expect(backend.desired(viewOf(a, b), local, 1500).routes.filter((r) => !r.blackhole)).toEqual([{ dst: "10.244.2.0/24", via: "172.30.0.12", dev: "eth0", onlink: false }]);
  });

  it("a node that leaves loses its session; a changed pod CIDR is re-announced", async () => {
    const { fake, backend } = await setup();
    backend.desired(viewOf(a, b, c), local, 1500);
    backend.desired(viewOf(a, c), { ...local, info: { ...a, podCIDRs: ["10.244.7.0/24"] } }, 1500);
    expect(fake.peerAddresses()).toEqual(["172.30.0.13"]);
    expect([...fake.announced]).toEqual(["10.244.7.0/24"]);
  });

  it("mesh off and a custom AS come from the config", async () => {
    const { fake, backend } = await setup({ config: "clusterCIDR: 10.244.0.0/16\nbackend: bgp\nbgp: { asn: 65010, mesh: false }\n" });
    backend.desired(viewOf(a, b), local, 1500);
    expect(fake.peers.size).toBe(0);
    expect(() => parseConfig("clusterCIDR: 10.244.0.0/16\nbgp: { asn: 0 }\n")).toThrow(/bgp.asn/);
  });

  it("after a restart the kernel is left alone until the peers have re-sent their routes (or the restart time passes)", async () => {
    let t = 0;
    const { fake, backend } = await setup({ restarting: true, now: () => t });
    expect(() => backend.desired(viewOf(a, b), local, 1500)).toThrow(/re-send their routes/);
    fake.isConverged = true;
    expect(backend.desired(viewOf(a, b), local, 1500).routes.length).toBe(1);
    const second = await setup({ restarting: true, now: () => t });
    t = 121_000;
    expect(second.backend.desired(viewOf(a, b), local, 1500).routes.length).toBe(1);
  });

  it("a burst of route changes is gathered into one reconcile; a change after it gets its own; a long feed gets one per window, not one per message", async () => {
    const fake = new FakeSpeaker();
    let events: SpeakerEvents = {};
    const backend = bgpBackend(parseConfig("clusterCIDR: 10.244.0.0/16\nbackend: bgp\n"), {
      log, routesInstalled: async () => false, makeSpeaker: (_cfg, ev) => ((events = ev), fake),
    });
    await backend.prepare(local);
    let reconciles = 0;
    backend.watch?.(() => reconciles++);
    const until = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (reconciles >= n ? resolve() : setTimeout(check, 10));
        check();
      });
    for (let i = 0; i < 100; i++) events.onBest?.([{ prefix: `10.9.${i}.0/24`, best: undefined }]);
    await until(1);
    await new Promise((r) => setTimeout(r, 150));
    expect(reconciles).toBe(1);
    events.onBest?.([{ prefix: "10.10.0.0/24", best: undefined }]);
    await until(2);
    // A feed spread over about a second, an UPDATE every 40 ms: writes start during it, in a handful of passes.
    for (let i = 0; i < 25; i++) {
      events.onBest?.([{ prefix: `10.11.${i}.0/24`, best: undefined }]);
      await new Promise((r) => setTimeout(r, 40));
    }
    await new Promise((r) => setTimeout(r, 150));
    expect(reconciles - 2).toBeGreaterThanOrEqual(2);
    expect(reconciles - 2).toBeLessThan(25);
  });

  /** A prepared backend whose speaker has learned `n` /32 routes from one peer. */
  async function backendWithLearned(n: number) {
    const fake = new FakeSpeaker();
    const events: SpeakerEvents = {};
    const backend = bgpBackend(parseConfig("clusterCIDR: 10.244.0.0/16\nbackend: bgp\n"), {
      log, routesInstalled: async () => false, makeSpeaker: (_cfg, ev) => (Object.assign(events, ev), fake),
    });
    await backend.prepare(local);
    fake.learned = Array.from({ length: n }, (_, i) => learned(`10.${50 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, "172.30.0.12"));
    return { backend, events };
  }

  it("the gathering window grows with the routing table (a pass goes over every route)", async () => {
    const { backend, events } = await backendWithLearned(40_000);
    expect(backend.desired(viewOf(a, b), local, 1500).routes.length).toBe(40_001);
    const t0 = performance.now();
    const reconciled = new Promise<number>((resolve) => backend.watch?.(() => resolve(performance.now() - t0)));
    events.onBest?.([{ prefix: "10.10.0.0/24", best: undefined }]);
    // 50 ms + 10 µs × 40,001 routes; timers never fire early.
    expect(await reconciled).toBeGreaterThanOrEqual(440);
  });

  it("a peer's End-of-RIB reconciles at once: its table is complete, there is nothing more to gather", async () => {
    const { backend, events } = await backendWithLearned(40_000);
    backend.desired(viewOf(a, b), local, 1500);
    let reconciles = 0;
    backend.watch?.(() => reconciles++);
    events.onBest?.([{ prefix: "10.10.0.0/24", best: undefined }]);
    events.onEndOfRib?.("172.30.0.12");
    expect(reconciles).toBe(1);
    // The gathering window it cut short does not fire a second pass.
    await new Promise((r) => setTimeout(r, 600));
    expect(reconciles).toBe(1);
  });

});

describe("bgp backend start-up", () => {
  it("a speaker that fails to start is not kept: the next prepare starts one again instead of going on without BGP", async () => {
    let starts = 0;
    class RefusedOnce extends FakeSpeaker {
      override async start() {
        starts++;
        if (starts === 1) throw Object.assign(new Error("listen EACCES: permission denied 0.0.0.0:179"), { code: "EACCES" });
      }
    }
    const cfg = parseConfig("clusterCIDR: 10.244.0.0/16\nbackend: bgp\n");
    const backend = bgpBackend(cfg, { log, makeSpeaker: () => new RefusedOnce(), routesInstalled: async () => false });
    await expect(backend.prepare(local)).rejects.toThrow(/EACCES/);
    // Until a speaker runs, no pass may compute a dataplane as if BGP ran.
    expect(() => backend.desired(viewOf(a, b), local, 1500)).toThrow(/not started/);
    await backend.prepare(local);
    expect(starts).toBe(2);
    expect(() => backend.desired(viewOf(a, b), local, 1500)).not.toThrow();
  });
});
