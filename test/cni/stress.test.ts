import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { NodeFixture, runCni } from "../support/cni.ts";
import { twillConf, writeNode } from "./fixtures.ts";

const node = new NodeFixture("tst");
beforeAll(async () => {
  await node.start();
  writeNode(node, ["10.97.0.0/23"]);
});
afterAll(() => node.stop());

async function twillLinks(): Promise<string[]> {
  const out = (await execIn(node.ns, ["ip", "-o", "link", "show", "type", "veth"])).stdout;
  return out.split("\n").map((l) => l.split(": ")[1]?.split("@")[0] ?? "").filter((n) => n.startsWith("twl"));
}

/** Did an ADD into this pod namespace get to the end (its default route exists)? */
async function attached(podNs: string): Promise<boolean> {
  return (await execIn(podNs, ["ip", "-4", "route", "show", "default"], { allowFailure: true })).stdout.includes("169.254.1.1");
}

function ipamEntries(): string[] {
  try {
    return readdirSync(join(node.dir, "ipam/twill")).filter((f) => !f.startsWith("last_reserved"));
  } catch {
    return [];
  }
}

describe("concurrency", () => {
  it("100 parallel ADDs get 100 distinct addresses and working interfaces; parallel DELs free them all", async () => {
    const conf = twillConf(node);
    const pods = await Promise.all(Array.from({ length: 100 }, () => node.pod()));
    const results = await Promise.all(
      pods.map((p, i) => runCni(node.ns, { command: "ADD", containerId: `par${i}`, netns: p.path, ifname: "eth0", stdin: conf })),
    );
    for (const r of results) expect(r.code, r.stdout + r.stderr).toBe(0);
    const ips = results.map((r) => r.json.ips[0].address);
    expect(new Set(ips).size).toBe(100);
    expect(await twillLinks()).toHaveLength(100);
    // Every pod answers at its address.
    const fping = await execIn(node.ns, ["sh", "-c", `for ip in ${ips.map((a) => a.split("/")[0]).join(" ")}; do ping -c1 -W2 $ip >/dev/null || echo "unreachable $ip"; done`]);
    expect(fping.stdout).toBe("");

    const dels = await Promise.all(pods.map((p, i) => runCni(node.ns, { command: "DEL", containerId: `par${i}`, netns: p.path, ifname: "eth0", stdin: conf })));
    for (const d of dels) expect(d.code, d.stdout).toBe(0);
    expect(await twillLinks()).toEqual([]);
    expect(ipamEntries()).toEqual([]);
    await Promise.all(pods.map((p) => node.removePod(p.name)));
  });
});

describe("crash safety", () => {
  it("ADDs killed with SIGKILL at random points leave nothing once GC runs", async () => {
    const conf = twillConf(node);
    // How long one whole ADD takes on this machine right now (it varies with
    // load by 10×), so the kill points below spread over all of it.
    const probe = await node.pod();
    const t0 = performance.now();
    expect((await runCni(node.ns, { command: "ADD", containerId: "kill-probe", netns: probe.path, ifname: "eth0", stdin: conf })).code).toBe(0);
    const addMs = performance.now() - t0;
    expect((await runCni(node.ns, { command: "DEL", containerId: "kill-probe", netns: probe.path, ifname: "eth0", stdin: conf })).code).toBe(0);
    const residue = async () => (await twillLinks()).length + ipamEntries().length;
    // Kill until 8 kills have left half-done work behind (or the test proves
    // nothing), cycling the kill point over the ADD; a loaded machine's timers
    // fire late, so the count of attempts is not fixed.
    const points = 24;
    let attempts = 0;
    let leftBehind = 0;
    while (leftBehind < 8 && attempts < 150) {
      const pod = await node.pod();
      const delayMs = (((attempts * 7) % points) * addMs * 1.2) / points;
      const before = await residue();
      await runCni(node.ns, { command: "ADD", containerId: `kill${attempts}`, netns: pod.path, ifname: "eth0", stdin: conf }, (pid) => {
        setTimeout(() => {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // it already finished
          }
        }, delayMs);
      });
      attempts++;
      // A completed ADD leaves a full attachment too (link + address); only count runs that were cut short.
      if ((await residue()) > before && !(await attached(pod.name))) leftBehind++;
    }
    expect(leftBehind).toBeGreaterThan(0);
    const kills = attempts;
    // Half the runtime cleans with DEL (as after a failed ADD), the rest is left to GC.
    for (let i = 0; i < kills; i += 2) {
      const del = await runCni(node.ns, { command: "DEL", containerId: `kill${i}`, ifname: "eth0", stdin: conf });
      expect(del.code, del.stdout).toBe(0);
    }
    const gc = await runCni(node.ns, { command: "GC", stdin: { ...conf, "cni.dev/valid-attachments": [] } });
    expect(gc.code, gc.stdout).toBe(0);
    expect(await twillLinks()).toEqual([]);
    expect(ipamEntries()).toEqual([]);
    expect((await execIn(node.ns, ["ip", "route", "show", "proto", "212"])).stdout.trim()).toBe("");
  });
});
