import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf, writeNode } from "./fixtures.ts";

const node = new NodeFixture();
beforeAll(async () => {
  await node.start();
  writeNode(node);
});
afterAll(() => node.stop());

async function add(containerId: string, netns: string, conf = twillConf(node), ifname = "eth0") {
  return runCni(node.ns, { command: "ADD", containerId, netns, ifname, stdin: conf });
}

describe("ADD / CHECK / DEL in every supported version", () => {
  for (const version of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    it(`cniVersion ${version}: ADD returns that version's result, the pod is reachable, DEL removes it`, async () => {
      const pod = await node.pod();
      const conf = twillConf(node, {}, version);
      const r = await add(`ctr-${version}`, pod.path, conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.cniVersion).toBe(version);
      const ip = r.json.ips[0];
      expect(ip.address).toMatch(/^10\.90\.1\.\d+\/32$/);
      expect(ip.gateway).toBe("169.254.1.1");
      // 0.3.x and 0.4.0 carry the address family; 1.x dropped it.
      if (version.startsWith("0.")) expect(ip.version).toBe("4");
      else expect(ip.version).toBeUndefined();
      // The interface MTU field exists only from 1.1.0.
      expect(r.json.interfaces[1].mtu).toBe(version === "1.1.0" ? 1450 : undefined);
      expect(r.json.interfaces[1].sandbox).toBe(pod.path);

      const podIp = ip.address.split("/")[0];
      // The host reaches the pod and the pod's configuration is what the spec result says.
      await execIn(node.ns, ["ping", "-c1", "-W2", podIp]);
      const routes = (await execIn(pod.name, ["ip", "route"])).stdout;
      expect(routes).toContain("default via 169.254.1.1 dev eth0");
      const mtu = (await execIn(pod.name, ["cat", "/sys/class/net/eth0/mtu"])).stdout.trim();
      expect(mtu).toBe("1450");

      if (version !== "0.3.0" && version !== "0.3.1") {
        const check = await runCni(node.ns, { command: "CHECK", containerId: `ctr-${version}`, netns: pod.path, ifname: "eth0", stdin: { ...conf, prevResult: r.json } });
        expect(check.code, check.stdout).toBe(0);
      } else {
        const check = await runCni(node.ns, { command: "CHECK", containerId: `ctr-${version}`, netns: pod.path, ifname: "eth0", stdin: { ...conf, prevResult: r.json } });
        expect(check.json.code).toBe(1);
      }

      const del = await runCni(node.ns, { command: "DEL", containerId: `ctr-${version}`, netns: pod.path, ifname: "eth0", stdin: conf });
      expect(del.code, del.stdout).toBe(0);
      expect(del.stdout).toBe("");
      const links = (await execIn(node.ns, ["ip", "-o", "link"])).stdout;
      expect(links).not.toContain(r.json.interfaces[0].name);
      expect(existsSync(join(node.dir, "ipam/twill", podIp))).toBe(false);
    });
  }

  it("two pods on one node reach each other over TCP", async () => {
    const a = await node.pod();
    const b = await node.pod();
    const ra = await add("tcp-a", a.path);
    const rb = await add("tcp-b", b.path);
    expect(ra.code).toBe(0);
    expect(rb.code).toBe(0);
    const ipB = rb.json.ips[0].address.split("/")[0];
    await execIn(b.name, ["sh", "-c", "nohup socat -T5 TCP-LISTEN:7000,reuseaddr SYSTEM:'echo hello' >/dev/null 2>&1 &"]);
    let reply = "";
    for (let i = 0; i < 50 && !reply.includes("hello"); i++) {
      reply = (await execIn(a.name, ["socat", "-T2", "-", `TCP:${ipB}:7000,connect-timeout=2`], { allowFailure: true })).stdout;
      if (!reply.includes("hello")) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reply).toContain("hello");
  });
});

describe("MTU", () => {
  it("falls back to the config's mtu, then 1500, when the node file has none to give", async () => {
    const other = new NodeFixture();
    await other.start();
    try {
      const pod = await other.pod();
      // No node file: IPAM needs explicit ranges, MTU comes from config.
      const conf = { ...twillConf(other), mtu: 1400, ipam: { type: "twill-ipam", dataDir: join(other.dir, "ipam"), ranges: [[{ subnet: "10.91.0.0/24" }]] } };
      const r = await runCni(other.ns, { command: "ADD", containerId: "mtu1", netns: pod.path, ifname: "eth0", stdin: conf });
      expect(r.code, r.stdout).toBe(0);
      expect((await execIn(pod.name, ["cat", "/sys/class/net/eth0/mtu"])).stdout.trim()).toBe("1400");
      const pod2 = await other.pod();
      const { mtu: _drop, ...noMtu } = conf;
      const r2 = await runCni(other.ns, { command: "ADD", containerId: "mtu2", netns: pod2.path, ifname: "eth0", stdin: noMtu });
      expect(r2.code, r2.stdout).toBe(0);
      expect((await execIn(pod2.name, ["cat", "/sys/class/net/eth0/mtu"])).stdout.trim()).toBe("1500");
    } finally {
      await other.stop();
    }
  });
});

describe("VERSION and STATUS", () => {
  it("VERSION lists every supported version", async () => {
    const r = await runCni(node.ns, { command: "VERSION", stdin: { cniVersion: "1.0.0" } });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: "1.0.0", supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] });
  });

  it("STATUS succeeds silently once the node file exists", async () => {
    const r = await runCni(node.ns, { command: "STATUS", stdin: twillConf(node) });
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toBe("");
  });

  it("STATUS reports code 50 while the daemon has not written the node file", async () => {
    const fresh = new NodeFixture();
    await fresh.start();
    try {
      const r = await runCni(fresh.ns, { command: "STATUS", stdin: twillConf(fresh) });
      expect(r.code).not.toBe(0);
      expect(r.json.code).toBe(50);
      expect(r.json.msg).toContain("node.json");
    } finally {
      await fresh.stop();
    }
  });

  it("STATUS and GC are refused for configs older than 1.1.0", async () => {
    for (const command of ["STATUS", "GC"]) {
      const r = await runCni(node.ns, { command, stdin: twillConf(node, {}, "1.0.0") });
      expect(r.json.code).toBe(1);
      expect(r.json.cniVersion).toBe("1.0.0");
    }
  });
});

describe("GC", () => {
  it("removes attachments missing from cni.dev/valid-attachments and keeps the listed ones", async () => {
    const gcNode = new NodeFixture();
    await gcNode.start();
    writeNode(gcNode, ["10.92.0.0/24"]);
    try {
      const keep = await gcNode.pod();
      const drop = await gcNode.pod();
      const conf = twillConf(gcNode);
      const rk = await runCni(gcNode.ns, { command: "ADD", containerId: "keep", netns: keep.path, ifname: "eth0", stdin: conf });
      const rd = await runCni(gcNode.ns, { command: "ADD", containerId: "drop", netns: drop.path, ifname: "eth0", stdin: conf });
      expect(rk.code).toBe(0);
      expect(rd.code).toBe(0);
      const gc = await runCni(gcNode.ns, {
        command: "GC",
        stdin: { ...conf, "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }] },
      });
      expect(gc.code, gc.stdout).toBe(0);
      const links = (await execIn(gcNode.ns, ["ip", "-o", "link"])).stdout;
      expect(links).toContain(rk.json.interfaces[0].name);
      expect(links).not.toContain(rd.json.interfaces[0].name);
      const allocated = readdirSync(join(gcNode.dir, "ipam/twill")).filter((f) => /^\d/.test(f) && !f.startsWith("last"));
      expect(allocated).toEqual([rk.json.ips[0].address.split("/")[0]]);
    } finally {
      await gcNode.stop();
    }
  });
});
