import { join, resolve } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLab, type RunningLab } from "../../lab/lab.ts";
import { EXIT, type DiffReply, type StatusReply } from "../../lib/ctl-api.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { until } from "../support/until.ts";

// `twillctl status` with the bgp backend: its own two-node lab (the shared one
// runs vxlan), whose daemons mesh over BGP; a Node object Twill must leave out
// is made here too (the shared lab's tests count its nodes).

const TWILLCTL = join(resolve(import.meta.dirname, "../.."), "dist/ctl/twillctl");
let lab: RunningLab;

beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 0, backend: "bgp" });
}, 300_000);
afterAll(() => lab?.close());

describe("twillctl status (bgp)", () => {
  it("shows each BGP session established, with its uptime and the prefixes exchanged", async () => {
    const [node1, node2] = lab.state.nodes;
    let s: StatusReply | undefined;
    await until("the BGP session in twillctl status", async () => {
      const r = await execIn(node1!.ns, [TWILLCTL, "--socket", join(node1!.dir, "ctl.sock"), "status", "-o", "json"], { allowFailure: true });
      s = r.code === 0 ? (JSON.parse(r.stdout) as StatusReply) : undefined;
      return s?.bgp[0]?.state === "Established" && s.bgp[0].prefixesIn > 0;
    }, 30_000);
    expect(s!.backend).toBe("bgp");
    expect(s!.bgp).toEqual([expect.objectContaining({ peer: node2!.ip, state: "Established", prefixesIn: 1, prefixesOut: 1 })]);
    expect(s!.bgp[0]!.sinceSeconds).toBeGreaterThanOrEqual(0);
    const text = await execIn(node1!.ns, [TWILLCTL, "--socket", join(node1!.dir, "ctl.sock"), "status"]);
    expect(text.stdout).toMatch(new RegExp(`BGP PEER\\s+STATE[\\s\\S]*${node2!.ip.replaceAll(".", "\\.")}\\s+Established`));
  });

  it("names a node left out, with its code and reason", async () => {
    const node1 = lab.state.nodes[0]!;
    await lab.kc.makeApiClient(CoreV1Api).createNode({ body: { metadata: { name: "ctl-ghost", annotations: { "twill.dev/public-ip": "not-an-ip" } } } });
    let s: StatusReply | undefined;
    await until("the left-out node in twillctl status", async () => {
      const r = await execIn(node1.ns, [TWILLCTL, "--socket", join(node1.dir, "ctl.sock"), "status", "-o", "json"], { allowFailure: true });
      s = r.code === 0 ? (JSON.parse(r.stdout) as StatusReply) : undefined;
      return !!s?.leftOut.some((l) => l.node === "ctl-ghost");
    }, 30_000);
    expect(s!.leftOut).toContainEqual({ node: "ctl-ghost", code: expect.stringMatching(/^NODE_(BAD_ANNOTATION|NO_POD_CIDR)$/), reason: expect.stringContaining("ctl-ghost") });
  });

  it("routes and peers: each route is its peer's, a route deleted by hand shows as missing until the daemon heals it", async () => {
    const [node1, node2] = lab.state.nodes;
    const run = (args: string[]) => execIn(node1!.ns, [TWILLCTL, "--socket", join(node1!.dir, "ctl.sock"), ...args, "-o", "json"], { allowFailure: true });
    const before = JSON.parse((await run(["peers"])).stdout) as DiffReply;
    expect(before.rows).toContainEqual(expect.objectContaining({ peer: node2!.name, kind: "route", key: node2!.podCIDR, state: "ok" }));
    expect(before.differences).toBe(0);
    let seen: DiffReply | undefined;
    // The daemon's resync (5 s here) may heal between the delete and the look: try again until one look falls between.
    await until("a missing route in twillctl routes", async () => {
      await execIn(node1!.ns, ["ip", "route", "del", node2!.podCIDR, "proto", "211"], { allowFailure: true });
      const r = await run(["routes"]);
      seen = JSON.parse(r.stdout) as DiffReply;
      return r.code === EXIT.FINDINGS && seen.differences === 1;
    }, 30_000);
    expect(seen!.rows).toContainEqual(expect.objectContaining({ peer: node2!.name, key: node2!.podCIDR, have: "", state: "missing" }));
    await until("the route healed", async () => (await run(["routes"])).code === EXIT.OK, 30_000);
  });
});
