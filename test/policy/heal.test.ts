import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { compileNode, describeNode, TABLE, type NftDescription } from "../../daemon/policy/compile.ts";
import type { ClusterState } from "../../daemon/policy/model.ts";
import { PolicyTable } from "../../daemon/policy/nft.ts";
import { addNetns, deleteNetns, execIn } from "../../lib/kernel/netns.ts";
import type { PolicyControllerSetup } from "../support/policy-controller-runner.ts";

// Twill owns its policy table: whatever someone does to it in the kernel (a
// deleted table, chain or element, a flushed chain, a foreign rule), a
// verify names the difference and the table is rewritten to exactly what a
// fresh daemon programs; a table nobody touched is left alone. Real nftables
// in namespaces of this file's own: one holds the table under test, the
// other a freshly programmed copy to compare listings with.

const ID = process.pid.toString(36);
const NS = `twph${ID}a`;
const FRESH = `twph${ID}f`;
const CTRL = `twph${ID}c`;
const POD_CIDR = "10.98.1.0/24";
const POD_CIDR6 = "fd98:1::/64";

const pod = (name: string, app: string, ip: string, ip6: string): V1Pod => ({
  metadata: { name, namespace: "x", labels: { app } },
  spec: { nodeName: "n1", containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }] }] },
  status: { podIP: ip, podIPs: [{ ip }, { ip: ip6 }] },
});
const pods = [pod("web", "web", "10.98.1.2", "fd98:1::2"), pod("api", "api", "10.98.1.3", "fd98:1::3"), pod("db", "db", "10.98.1.4", "fd98:1::4")];
const namespaces: V1Namespace[] = [{ metadata: { name: "x", labels: { team: "a" } } }];
// Written as the apiserver sends them (`from`, not the client's `_from`).
const policies = [
  {
    metadata: { name: "web", namespace: "x" },
    spec: { podSelector: { matchLabels: { app: "web" } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: "api" } } }, { ipBlock: { cidr: "10.0.0.0/8", except: ["10.98.0.0/16"] } }], ports: [{ port: "http" }, { protocol: "UDP", port: 53 }] }] },
  },
  {
    metadata: { name: "db", namespace: "x" },
    spec: { podSelector: { matchLabels: { app: "db" } }, policyTypes: ["Ingress", "Egress"], ingress: [{ from: [{ podSelector: {} }], ports: [{ protocol: "TCP", port: 5432, endPort: 5440 }] }], egress: [{ ports: [{ protocol: "UDP", port: 53 }] }] },
  },
] as unknown as V1NetworkPolicy[];
const state: ClusterState = { pods, namespaces, policies };
const opts = { failClosed: { podCidr: POD_CIDR, ready: pods.map((p) => p.status!.podIP!), podCidr6: POD_CIDR6, ready6: pods.map((p) => p.status!.podIPs![1]!.ip) } };
const want = (): NftDescription => describeNode(compileNode(state, pods), opts);

const table = new PolicyTable(NS);
const nft = (ns: string, ...args: string[]) => execIn(ns, ["nft", ...args]);
/** The table as nft lists it ("" when there is none). */
const listing = async (ns: string) => (await execIn(ns, ["nft", "list", "table", "inet", TABLE], { allowFailure: true })).stdout;
const handles = async (ns: string) => (await nft(ns, "-a", "list", "table", "inet", TABLE)).stdout;
let fresh = "";

beforeAll(async () => {
  for (const ns of [NS, FRESH, CTRL]) await addNetns(ns);
  const reference = new PolicyTable(FRESH);
  expect((await reference.apply(want())).mode).toBe("replace");
  reference.close();
  fresh = await listing(FRESH);
});
afterAll(async () => {
  table.close();
  for (const ns of [NS, FRESH, CTRL]) await deleteNetns(ns);
});
beforeEach(async () => {
  // Every case starts from a table this process has just programmed whole.
  table.forget();
  expect((await table.apply(want())).mode).toBe("replace");
  expect(await listing(NS)).toBe(fresh);
});

/** Drift made by `tamper`: the check named finds it (a quick check may not: see each case), and healing restores the fresh table. */
async function expectHealed(tamper: string, check: "quick" | "full", found: RegExp): Promise<void> {
  await nft(NS, tamper);
  expect(await listing(NS)).not.toBe(fresh);
  const drift = await table.verify(check === "full");
  expect(drift?.join("\n")).toMatch(found);
  const healed = await table.heal(check === "full");
  expect(healed.result?.mode).toBe("replace");
  expect(await listing(NS)).toBe(fresh);
  expect(await table.verify(true)).toEqual([]);
}

describe("the policy table heals whatever is done to it in the kernel", () => {
  it("a table nobody touched verifies clean and is not rewritten (rule handles unchanged)", async () => {
    const before = await handles(NS);
    expect(await table.verify(false)).toEqual([]);
    expect(await table.verify(true)).toEqual([]);
    expect(await table.heal(true)).toEqual({ drift: [] });
    expect(await handles(NS)).toBe(before);
  });

  it("a deleted table is found by the quick check and programmed again", async () => {
    await expectHealed(`delete table inet ${TABLE}`, "quick", /table inet twill-policy is missing/);
  });

  it("a deleted chain is found by the quick check and restored", async () => {
    await expectHealed(`flush chain inet ${TABLE} forward; delete chain inet ${TABLE} forward`, "quick", /chain forward is missing/);
    // A pod's chain can go only with the dispatch element that jumps to it.
    await expectHealed(`delete element inet ${TABLE} egress { 10.98.1.4 }; flush chain inet ${TABLE} eg-10_98_1_4; delete chain inet ${TABLE} eg-10_98_1_4`, "quick", /chain eg-10_98_1_4 is missing/);
  });

  it("a flushed forward chain (fail-open: no anti-spoofing, fail-closed or dispatch) is found by the full check and refilled", async () => {
    await expectHealed(`flush chain inet ${TABLE} forward`, "full", /chain forward holds 0 rules, want 10/);
  });

  it("a foreign rule in Twill's chains is found by the full check and removed", async () => {
    await expectHealed(`insert rule inet ${TABLE} forward accept`, "full", /chain forward holds 11 rules, want 10; rule 1 is "accept"/);
    await expectHealed(`insert rule inet ${TABLE} in-10_98_1_2 ip saddr 10.98.1.9 accept`, "full", /chain in-10_98_1_2 holds 3 rules, want 2/);
  });

  it("a deleted dispatch-map element (the pod would be un-isolated) is found by the quick check and restored", async () => {
    await expectHealed(`delete element inet ${TABLE} ingress { 10.98.1.2 }`, "quick", /map ingress lacks 1 of its 2 elements \(10\.98\.1\.2 : jump in-10_98_1_2\)/);
  });

  it("a foreign element in the ready set or an IPv6 closed set is found by the quick check and removed", async () => {
    await expectHealed(`add element inet ${TABLE} ready { 10.98.1.77 }`, "quick", /set ready holds 1 foreign elements/);
    await expectHealed(`delete element inet ${TABLE} closed6-in { fd98:1::4 }`, "quick", /set closed6-in lacks 1 of its 2 elements/);
  });

  it("a deleted element of a pod's allowed-peers set is found by the full check and restored", async () => {
    const set = want().sets.find((s) => s.name === "in-10_98_1_2")!;
    expect(set.elements).toContain("10.98.1.3 . 6 . 8080");
    await expectHealed(`delete element inet ${TABLE} in-10_98_1_2 { 10.98.1.3 . tcp . 8080 }`, "full", /set in-10_98_1_2 lacks 1 of its \d+ elements \(10\.98\.1\.3 \. 6 \. 8080\)/);
  });

  it("a foreign set in Twill's table is found by the quick check and removed", async () => {
    await expectHealed(`add set inet ${TABLE} extra { type ipv4_addr; }`, "quick", /foreign set extra/);
  });
});

describe("the policy controller verifies the table every resync period", () => {
  it("a flushed forward chain is refilled by the controller, with one POLICY_TABLE_DRIFT warning", async () => {
    // The controller runs in a process of its own inside the namespace (it programs the namespace it runs in).
    const proc = spawn("ip", ["netns", "exec", CTRL, process.execPath, join(import.meta.dirname, "../support/policy-controller-runner.ts")], { stdio: ["pipe", "pipe", "inherit"] });
    const lines: { level: number; code?: string; msg: string; drift?: string[] }[] = [];
    createInterface({ input: proc.stdout }).on("line", (l) => lines.push(JSON.parse(l)));
    const setup: PolicyControllerSetup = { nodeName: "n1", pods, namespaces, policies, podCidrs: [POD_CIDR, POD_CIDR6], resyncSeconds: 1 };
    try {
      // The setup, then one watch event: the controller programs the table.
      proc.stdin.write(`${JSON.stringify(setup)}\n\n`);
      await vi.waitFor(async () => expect(await listing(CTRL)).toBe(fresh), { timeout: 30_000, interval: 200 });
      await nft(CTRL, `flush chain inet ${TABLE} forward`);
      await vi.waitFor(() => expect(lines.filter((l) => l.code === "POLICY_TABLE_DRIFT")).toHaveLength(1), { timeout: 30_000, interval: 200 });
      await vi.waitFor(async () => expect(await listing(CTRL)).toBe(fresh), { timeout: 30_000, interval: 200 });
      const warning = lines.find((l) => l.code === "POLICY_TABLE_DRIFT")!;
      expect(warning.level).toBe(40);
      expect(warning.drift?.join("\n")).toMatch(/chain forward holds 0 rules, want 10/);
    } finally {
      proc.kill();
    }
  });
});
