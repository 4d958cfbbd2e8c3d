import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addNetns, deleteNetns, netnsPath } from "../../lib/kernel/netns.ts";
import { DEFAULT_TWILL_BINARY, nodeSettings, parseConfig } from "../../daemon/config.ts";
import { uniqueName } from "../support/cni.ts";

// A configuration error stops the daemon before it touches anything: one
// clear log line, a non-zero exit, no link, route or table created.

const REPO = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "twill-daemon-cfg-"));
const ns = uniqueName("tdc");
beforeAll(() => addNetns(ns));
afterAll(async () => {
  await deleteNetns(ns);
  rmSync(dir, { recursive: true, force: true });
});

function runDaemon(config: string) {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, config);
  return spawnSync("nsenter", [`--net=${netnsPath(ns)}`, process.execPath, join(REPO, "daemon/main.ts"), "--config", path, "--node-name", "n1", "--kubeconfig", "/nonexistent"], { encoding: "utf8", timeout: 30_000 });
}

describe("daemon configuration errors", () => {
  for (const [what, config, code] of [
    ["an unknown backend", "clusterCIDR: 10.244.0.0/16\nbackend: carrier-pigeon\n", "CONFIG_INVALID"],
    ["malformed YAML", "clusterCIDR: [10.244.0.0/16\n", "CONFIG_INVALID"],
    ["a cluster CIDR that is not one", "clusterCIDR: 10.244.0.0/40\n", "CIDR_INVALID"],
  ] as const) {
    it(`${what}: exits with one clear line and changes nothing`, () => {
      const r = runDaemon(config);
      expect(r.status).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: 60, code });
      const links = spawnSync("ip", ["-n", ns, "-o", "link"], { encoding: "utf8" }).stdout;
      expect(links).not.toContain("twill");
      const tables = spawnSync("ip", ["netns", "exec", ns, "nft", "list", "tables"], { encoding: "utf8" }).stdout;
      expect(tables).toBe("");
    });
  }

  it("the twill binary (TCP MD5 keys for BGP) is where the image has it unless --twill-binary says otherwise", () => {
    expect(DEFAULT_TWILL_BINARY).toBe("/opt/twill/bin/twill");
    expect(nodeSettings({ "node-name": "n1" }, {}).twillBinary).toBe(DEFAULT_TWILL_BINARY);
    expect(nodeSettings({ "node-name": "n1", "twill-binary": "/x/twill" }, {}).twillBinary).toBe("/x/twill");
  });

  it("parses the ConfigMap's defaults", () => {
    expect(parseConfig("clusterCIDR: 10.244.0.0/16\n")).toEqual({
      clusterCIDR: "10.244.0.0/16",
      backend: "vxlan",
      mtu: 0,
      masquerade: true,
      policy: true,
      policyFailClosed: true,
      bigTcp: true,
      serviceProxy: false,
      vxlan: { vni: 1, port: 8472, directRouting: false },
    });
    expect(parseConfig("clusterCIDR: 10.244.0.0/16\nserviceProxy: true\n").serviceProxy).toBe(true);
    expect(() => parseConfig("clusterCIDR: 10.244.0.0/16\nserviceProxy: 1\n")).toThrow(/serviceProxy must be true or false/);
    expect(parseConfig("clusterCIDR: 10.244.0.0/16\nbgp: { advertiseServices: true }\n").bgp?.advertiseServices).toBe(true);
    expect(parseConfig("clusterCIDR: 10.244.0.0/16\nbigTcp: false\n").bigTcp).toBe(false);
    expect(() => parseConfig("clusterCIDR: 10.244.0.0/16\nbigTcp: yes please\n")).toThrow(/bigTcp must be true or false/);
  });
});
