import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf, writeNode } from "./fixtures.ts";

// Every bad input gets the spec's error object on stdout, a non-zero exit,
// and leaves nothing behind: no veth, no route, no allocation.

const node = new NodeFixture("tbi");
beforeAll(async () => {
  await node.start();
  writeNode(node, ["10.93.0.0/29"]);
});
afterAll(() => node.stop());

async function leftovers(): Promise<{ links: string[]; routes: string; allocations: string[] }> {
  const links = (await execIn(node.ns, ["ip", "-o", "link"])).stdout
    .split("\n")
    .map((l) => l.split(": ")[1]?.split("@")[0] ?? "")
    .filter((n) => n.startsWith("twl"));
  const routes = (await execIn(node.ns, ["ip", "route", "show", "proto", "212"])).stdout.trim();
  let allocations: string[] = [];
  try {
    allocations = readdirSync(join(node.dir, "ipam/twill")).filter((f) => /^[0-9a-f.:]+$/.test(f));
  } catch {
    allocations = [];
  }
  return { links, routes, allocations };
}

function expectSpecError(r: { code: number; json: any }, code: number): void {
  expect(r.code).not.toBe(0);
  expect(r.json).toMatchObject({ code, cniVersion: expect.any(String), msg: expect.any(String) });
}

describe("bad input", () => {
  it("malformed JSON config: code 6", async () => {
    const pod = await node.pod();
    const r = await runCni(node.ns, { command: "ADD", containerId: "bad1", netns: pod.path, ifname: "eth0", stdin: "{not json" });
    expectSpecError(r, 6);
  });

  it("unsupported or missing cniVersion: code 1, or 7 when absent", async () => {
    const pod = await node.pod();
    const r = await runCni(node.ns, { command: "ADD", containerId: "bad2", netns: pod.path, ifname: "eth0", stdin: twillConf(node, {}, "0.2.0") });
    expectSpecError(r, 1);
    expect(r.json.msg).toContain("0.2.0");
    const { cniVersion: _v, ...noVersion } = twillConf(node);
    expectSpecError(await runCni(node.ns, { command: "ADD", containerId: "bad2", netns: pod.path, ifname: "eth0", stdin: noVersion }), 7);
  });

  it("missing or invalid environment: code 4", async () => {
    const pod = await node.pod();
    const conf = twillConf(node);
    expectSpecError(await runCni(node.ns, { command: "ADD", netns: pod.path, ifname: "eth0", stdin: conf }), 4);
    expectSpecError(await runCni(node.ns, { command: "ADD", containerId: "x", ifname: "eth0", stdin: conf }), 4);
    expectSpecError(await runCni(node.ns, { command: "ADD", containerId: "x", netns: pod.path, ifname: "this-name-is-too-long", stdin: conf }), 4);
    expectSpecError(await runCni(node.ns, { command: "ADD", containerId: "bad/id", netns: pod.path, ifname: "eth0", stdin: conf }), 4);
    expectSpecError(await runCni(node.ns, { command: "FROB", stdin: conf }), 4);
  });

  it("invalid network or IPAM config: code 7", async () => {
    const pod = await node.pod();
    const base = twillConf(node);
    const bad = [
      { ...base, mtu: 70000 },
      { ...base, name: "" },
      { ...base, ipam: undefined },
      { ...base, ipam: { type: "twill-ipam", ranges: [[{ subnet: "10.0.0.0/33" }]], dataDir: join(node.dir, "ipam") } },
      { ...base, ipam: { type: "twill-ipam", ranges: [[{ subnet: "10.0.0.0/24", rangeStart: "10.0.1.5" }]], dataDir: join(node.dir, "ipam") } },
      { ...base, ipam: { type: "twill-ipam", ranges: "nope", dataDir: join(node.dir, "ipam") } },
      { ...base, ipam: { type: "no-such-ipam-plugin" } },
    ];
    for (const conf of bad) {
      const r = await runCni(node.ns, { command: "ADD", containerId: "bad4", netns: pod.path, ifname: "eth0", stdin: conf });
      expectSpecError(r, 7);
    }
    expect(await leftovers()).toEqual({ links: [], routes: "", allocations: [] });
  });

  it("a vanished network namespace fails ADD cleanly; DEL still succeeds", async () => {
    const pod = await node.pod();
    await node.removePod(pod.name);
    const r = await runCni(node.ns, { command: "ADD", containerId: "gone", netns: pod.path, ifname: "eth0", stdin: twillConf(node) });
    expectSpecError(r, 4);
    const del = await runCni(node.ns, { command: "DEL", containerId: "gone", netns: pod.path, ifname: "eth0", stdin: twillConf(node) });
    expect(del.code, del.stdout).toBe(0);
    expect(await leftovers()).toEqual({ links: [], routes: "", allocations: [] });
  });

  it("DEL of an unknown container succeeds and changes nothing; a second DEL too", async () => {
    for (let i = 0; i < 2; i++) {
      const del = await runCni(node.ns, { command: "DEL", containerId: "never-added", ifname: "eth0", stdin: twillConf(node) });
      expect(del.code, del.stdout).toBe(0);
      expect(del.stdout).toBe("");
    }
  });

  it("an address conflict (route already present) fails ADD with code 101 and releases the address", async () => {
    const pod = await node.pod();
    // Someone else already routes the next address (10.93.0.1) on this node.
    await execIn(node.ns, ["ip", "link", "add", "squat0", "type", "veth", "peer", "name", "squat1"]);
    await execIn(node.ns, ["ip", "link", "set", "squat0", "up"]);
    await execIn(node.ns, ["ip", "route", "add", "10.93.0.1/32", "dev", "squat0", "proto", "212"]);
    try {
      const r = await runCni(node.ns, { command: "ADD", containerId: "conflict", netns: pod.path, ifname: "eth0", stdin: twillConf(node) });
      expectSpecError(r, 101);
      expect(r.json.details).toContain("10.93.0.1");
      const left = await leftovers();
      expect(left.links).toEqual([]);
      expect(left.allocations).toEqual([]);
    } finally {
      await execIn(node.ns, ["ip", "link", "del", "squat0"]);
    }
  });

  it("an exhausted range fails with code 100, names the range, and leaks nothing", async () => {
    // 10.93.0.0/29 has six assignable addresses.
    const conf = twillConf(node);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const pod = await node.pod();
      const r = await runCni(node.ns, { command: "ADD", containerId: `ex${i}`, netns: pod.path, ifname: "eth0", stdin: conf });
      expect(r.code, r.stdout).toBe(0);
      ids.push(`ex${i}`);
    }
    const pod = await node.pod();
    const r = await runCni(node.ns, { command: "ADD", containerId: "ex-over", netns: pod.path, ifname: "eth0", stdin: conf });
    expectSpecError(r, 100);
    expect(r.json.msg).toContain("10.93.0.0/29");
    const status = await runCni(node.ns, { command: "STATUS", stdin: conf });
    expectSpecError(status, 50);
    for (const id of ids) {
      expect((await runCni(node.ns, { command: "DEL", containerId: id, ifname: "eth0", stdin: conf })).code).toBe(0);
    }
    expect(await leftovers()).toEqual({ links: [], routes: "", allocations: [] });
  });

  it("ADD before the daemon has written the node file: code 11 (try again later)", async () => {
    const other = new NodeFixture("tbk");
    await other.start();
    try {
      const pod = await other.pod();
      const r = await runCni(other.ns, { command: "ADD", containerId: "early", netns: pod.path, ifname: "eth0", stdin: twillConf(other) });
      expectSpecError(r, 11);
      expect((await execIn(other.ns, ["ip", "-o", "link"])).stdout).not.toContain("twl");
    } finally {
      await other.stop();
    }
  });

  it("a corrupt node file is reported, not crashed on", async () => {
    const other = new NodeFixture("tbj");
    await other.start();
    try {
      writeFileSync(join(other.dir, "node.json"), "{garbage");
      const pod = await other.pod();
      const r = await runCni(other.ns, { command: "ADD", containerId: "nf", netns: pod.path, ifname: "eth0", stdin: twillConf(other) });
      expectSpecError(r, 7);
      expect(r.json.msg).toContain("node.json");
    } finally {
      await other.stop();
    }
  });

  it("a failed ADD's log line keeps the error's sentence next to its code (the operator's first clue)", async () => {
    const pod = await node.pod();
    const logFile = join(node.dir, "failed-add.log");
    const conf = twillConf(node, { logFile, nodeFile: join(node.dir, "no-such-node.json") });
    const r = await runCni(node.ns, { command: "ADD", containerId: "badlog", netns: pod.path, ifname: "eth0", stdin: conf });
    expectSpecError(r, 11);
    const line = readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l)).find((e) => e.msg === "CNI command failed");
    expect(line).toMatchObject({ code: r.json.code, error: r.json.msg });
  });
});
