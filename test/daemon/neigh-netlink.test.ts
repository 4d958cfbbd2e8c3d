import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KernelState } from "../../daemon/kernel/desired.ts";
import type { Changes } from "../../daemon/kernel/reconcile.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { startNamespaceRunner, type NamespaceRunner } from "../support/namespace-runner.ts";

// The VXLAN backend's neighbour and FDB entries reconciled over rtnetlink,
// with the whole reconcile (device, entries, routes) in a namespace of its
// own (a veth pair made inside it, 10.97.0.1/24 on one end as the underlay):
// what it writes, what it leaves alone, how it heals, how it reports an
// entry the kernel refuses.

const NS = `twnl${randomBytes(3).toString("hex")}`;
const DEV = "twill.vxlan";
let runner: NamespaceRunner<KernelState, Answer>;

interface Answer {
  changes?: Changes;
  error?: { code: string; message: string; details: string };
}

async function sync(want: KernelState): Promise<Answer> {
  const { changes, error } = await runner.ask(want);
  return error ? { error } : { changes };
}

const mac = (i: number) => `0e:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
const vtep = (i: number) => `10.97.${1 + (i >> 8)}.${i & 255}`;
const gw = (i: number) => `10.${200 + (i >> 8)}.${i & 255}.0`;

/** This node and peers `ids`, as the vxlan backend computes them. */
function desired(ids: number[], o: { vni?: number; dst?: (i: number) => string } = {}): KernelState {
  return {
    links: [{ name: DEV, vni: o.vni ?? 7, port: 8472, local: "10.97.0.1", dev: "u0", mac: "0e:ff:00:00:00:01", mtu: 1450, addresses: ["10.199.0.0/32"] }],
    neighbours: ids.map((i) => ({ ip: gw(i), mac: mac(i), dev: DEV })),
    fdb: ids.map((i) => ({ mac: mac(i), dev: DEV, dst: (o.dst ?? vtep)(i) })),
    routes: ids.map((i) => ({ dst: `${gw(i)}/24`, via: gw(i), dev: DEV, onlink: true })),
  };
}
const none = { links: 0, neighbours: 0, fdb: 0, routes: 0 };

const run = async (...argv: string[]) => (await exec(["ip", "netns", "exec", NS, ...argv])).stdout;
const sorted = (text: string) => text.split("\n").map((l) => l.trim()).filter(Boolean).sort();
const neighbours = async (dev = DEV) => sorted(await run("ip", "neigh", "show", "dev", dev));
const fdb = async (dev = DEV) => sorted(await run("bridge", "fdb", "show", "dev", dev));
const routes = async () => sorted(await run("ip", "route", "show", "proto", "211"));
const permanentNeigh = (i: number) => `${gw(i)} lladdr ${mac(i)} PERMANENT`;
const permanentFdb = (i: number, dst = vtep(i)) => `${mac(i)} dst ${dst} self permanent`;

beforeAll(async () => {
  runner = await startNamespaceRunner(NS, ["u0", "u1"], "10.97.0.1/24", join(import.meta.dirname, "../support/reconcile-runner.ts"));
});

afterAll(async () => {
  await runner?.close();
});

describe("neighbour and FDB reconcile over rtnetlink", () => {
  it("adds permanent neighbours and FDB entries beside the routes, then finds nothing to do", async () => {
    const want = desired([1, 2, 3]);
    const first = await sync(want);
    expect(first.changes).toMatchObject({ neighbours: 3, fdb: 3, routes: 3 });
    expect(first.changes!.links).toBeGreaterThan(0);
    expect(await neighbours()).toEqual([1, 2, 3].map(permanentNeigh).sort());
    expect(await fdb()).toEqual([1, 2, 3].map((i) => permanentFdb(i)).sort());
    expect(await routes()).toEqual([1, 2, 3].map((i) => `${gw(i)}/24 via ${gw(i)} dev ${DEV} onlink`).sort());
    expect(await sync(want)).toEqual({ changes: none });
  });

  it("an entry deleted by hand comes back and one changed by hand is corrected", async () => {
    const want = desired([1, 2, 3]);
    await sync(want);
    await run("ip", "neigh", "del", gw(1), "dev", DEV);
    await run("ip", "neigh", "replace", gw(2), "lladdr", "0e:aa:aa:aa:aa:aa", "dev", DEV, "nud", "permanent");
    await run("bridge", "fdb", "del", mac(3), "dev", DEV, "dst", vtep(3), "self");
    expect(await sync(want)).toEqual({ changes: { ...none, neighbours: 2, fdb: 1 } });
    expect(await neighbours()).toEqual([1, 2, 3].map(permanentNeigh).sort());
    expect(await fdb()).toEqual([1, 2, 3].map((i) => permanentFdb(i)).sort());
  });

  it("removes its stale entries: a peer gone, and permanent entries added by hand on its device", async () => {
    await sync(desired([1, 2, 3]));
    await run("ip", "neigh", "replace", gw(99), "lladdr", mac(99), "dev", DEV, "nud", "permanent");
    await run("bridge", "fdb", "append", mac(99), "dev", DEV, "dst", vtep(99), "self", "permanent");
    expect(await sync(desired([1, 2]))).toEqual({ changes: { ...none, neighbours: 2, fdb: 2, routes: 1 } });
    expect(await neighbours()).toEqual([1, 2].map(permanentNeigh).sort());
    expect(await fdb()).toEqual([1, 2].map((i) => permanentFdb(i)).sort());
    expect(await routes()).toHaveLength(2);
  });

  it("a peer whose underlay address moved (same VTEP MAC) is reached at the new address after one pass", async () => {
    await sync(desired([1, 2, 3]));
    const moved = (i: number) => (i === 2 ? "10.97.9.2" : vtep(i));
    expect(await sync(desired([1, 2, 3], { dst: moved }))).toEqual({ changes: { ...none, fdb: 1 } });
    expect(await fdb()).toEqual([1, 2, 3].map((i) => permanentFdb(i, moved(i))).sort());
    expect(await sync(desired([1, 2, 3], { dst: moved }))).toEqual({ changes: none });
  });

  it("leaves entries on other devices and entries that are not permanent alone", async () => {
    const want = desired([1, 2]);
    await sync(want);
    await run("ip", "link", "add", "other.vx", "type", "vxlan", "id", "9", "local", "10.97.0.1", "dev", "u0", "dstport", "4790", "nolearning");
    await run("ip", "link", "set", "other.vx", "up");
    await run("ip", "neigh", "replace", gw(50), "lladdr", mac(50), "dev", "other.vx", "nud", "permanent");
    await run("bridge", "fdb", "append", mac(50), "dev", "other.vx", "dst", vtep(50), "self", "permanent");
    await run("ip", "neigh", "replace", gw(51), "lladdr", mac(51), "dev", DEV, "nud", "reachable");
    await run("ip", "neigh", "replace", gw(52), "lladdr", mac(52), "dev", DEV, "nud", "stale");
    await run("bridge", "fdb", "append", mac(53), "dev", DEV, "dst", vtep(53), "self", "dynamic");
    const [beforeOther, beforeFdbOther] = [await neighbours("other.vx"), await fdb("other.vx")];
    // Compared by address: a reachable entry may turn stale meanwhile.
    const addresses = (list: string[]) => list.map((l) => l.split(" ")[0]);
    const beforeNeigh = await neighbours();
    const beforeFdb = await fdb();

    expect(await sync(want)).toEqual({ changes: none });
    expect(await neighbours("other.vx")).toEqual(beforeOther);
    expect(await fdb("other.vx")).toEqual(beforeFdbOther);
    expect(beforeOther).toContain(permanentNeigh(50));
    expect(addresses(await neighbours())).toEqual(addresses(beforeNeigh));
    expect(addresses(beforeNeigh)).toEqual(expect.arrayContaining([gw(51), gw(52)]));
    expect(await fdb()).toEqual(beforeFdb);
    expect(beforeFdb).toContain(`${mac(53)} dst ${vtep(53)} self `.trim());
    await run("ip", "link", "del", "other.vx");
    await run("ip", "neigh", "del", gw(51), "dev", DEV);
    await run("ip", "neigh", "del", gw(52), "dev", DEV);
    await run("bridge", "fdb", "del", mac(53), "dev", DEV, "dst", vtep(53), "self");
  });

  it("a device made again (new VNI) gets its entries again under its new index", async () => {
    await sync(desired([1, 2]));
    const r = await sync(desired([1, 2], { vni: 8 }));
    expect(r.changes).toMatchObject({ neighbours: 2, fdb: 2, routes: 2 });
    expect(await neighbours()).toEqual([1, 2].map(permanentNeigh).sort());
    expect(await fdb()).toEqual([1, 2].map((i) => permanentFdb(i)).sort());
    expect(await sync(desired([1, 2], { vni: 8 }))).toEqual({ changes: none });
  });

  it("a device's MTU, MAC, state and addresses are corrected in place, under the same index", async () => {
    const want = desired([1, 2]);
    await sync(want);
    const index = await run("cat", `/sys/class/net/${DEV}/ifindex`);
    await run("ip", "link", "set", DEV, "down");
    await run("ip", "link", "set", DEV, "mtu", "1400", "address", "0e:ff:00:00:00:99");
    await run("ip", "addr", "del", "10.199.0.0/32", "dev", DEV);
    await run("ip", "addr", "add", "10.199.9.9/32", "dev", DEV);
    // Down took the routes and the neighbour entries (permanent too) with it; the FDB entries stay.
    expect(await sync(want)).toEqual({ changes: { ...none, links: 5, neighbours: 2, routes: 2 } });
    expect(await run("cat", `/sys/class/net/${DEV}/ifindex`)).toBe(index);
    const link = JSON.parse(await run("ip", "-4", "-j", "addr", "show", "dev", DEV))[0] as { mtu: number; flags: string[]; addr_info: { local: string }[] };
    expect([link.mtu, link.flags.includes("UP"), link.addr_info.map((a) => a.local)]).toEqual([1450, true, ["10.199.0.0"]]);
    expect((await run("cat", `/sys/class/net/${DEV}/address`)).trim()).toBe("0e:ff:00:00:00:01");
    expect(await neighbours()).toEqual([1, 2].map(permanentNeigh).sort());
    expect(await sync(want)).toEqual({ changes: none });
  });

  it("a device that learns, or is not a VXLAN device, is made again", async () => {
    await sync(desired([1]));
    await run("ip", "link", "set", DEV, "type", "vxlan", "learning");
    expect((await sync(desired([1]))).changes).toMatchObject({ neighbours: 1, fdb: 1, routes: 1 });
    await run("ip", "link", "del", DEV);
    await run("ip", "link", "add", DEV, "type", "veth", "peer", "name", "tw-peer");
    expect((await sync(desired([1]))).changes).toMatchObject({ neighbours: 1, fdb: 1, routes: 1 });
    expect(JSON.parse(await run("ip", "-j", "-d", "link", "show", "dev", DEV))[0].linkinfo.info_kind).toBe("vxlan");
    expect(await sync(desired([1]))).toEqual({ changes: none });
  });

  it("an entry the kernel refuses is named with its errno as a sentence; the others of its step are written", async () => {
    await sync(desired([1]));
    // An IPv6 remote on an IPv4 VXLAN device: the driver refuses it.
    const r = await sync(desired([1, 2, 3], { dst: (i) => (i === 2 ? "fd00::2" : vtep(i)) }));
    expect(r.error?.code).toBe("KERNEL_WRITE");
    expect(r.error?.message).toMatch(
      new RegExp(`^fdb replace ${mac(2)} dev twill\\.vxlan dst fd00::2 self permanent failed: .*\\(EAFNOSUPPORT\\) \\(1 of 4 neighbour and FDB writes failed`),
    );
    expect(await neighbours()).toEqual([1, 2, 3].map(permanentNeigh).sort());
    expect(await fdb()).toEqual([1, 3].map((i) => permanentFdb(i)).sort());
    // As with `ip -batch`, a step that failed stops the pass before the routes.
    expect(await routes()).toHaveLength(1);
    expect((await sync(desired([1, 2, 3]))).changes).toMatchObject({ neighbours: 0, fdb: 1, routes: 2 });
  });

  it("thousands of entries in one pass (several batches, dumps of several parts), then all removed", async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => i + 1);
    await sync(desired([]));
    const r = await sync(desired(ids));
    expect(r.changes).toMatchObject({ neighbours: 3000, fdb: 3000 });
    expect(await neighbours()).toHaveLength(3000);
    expect(await fdb()).toHaveLength(3000);
    expect(await sync(desired(ids))).toEqual({ changes: none });
    expect((await sync(desired([]))).changes).toMatchObject({ neighbours: 3000, fdb: 3000, routes: 3000 });
    expect(await neighbours()).toEqual([]);
    expect(await fdb()).toEqual([]);
  });
});
