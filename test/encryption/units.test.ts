import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Node } from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { buildView } from "../../daemon/cluster/view.ts";
import { parseConfig } from "../../daemon/config.ts";
import { parseDump } from "../../daemon/encryption/control.ts";
import { deviceChanges, uapiLines, wgSetArgs } from "../../daemon/encryption/device-diff.ts";
import { guardRuleset } from "../../daemon/encryption/guard.ts";
import { generateKeyPair, hexKey, isWireguardKey, loadOrCreateKey } from "../../daemon/encryption/keys.ts";
import { encryptedState, parseEndpoint, WG_ANNOTATION, wireguardOverhead, wireguardPeers } from "../../daemon/encryption/peers.ts";
import { parseGet } from "../../daemon/encryption/uapi.ts";
import { emptyState } from "../../daemon/kernel/desired.ts";
import { exec } from "../../lib/kernel/exec.ts";

const dir = mkdtempSync(join(tmpdir(), "wg-units-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const keys = Array.from({ length: 4 }, () => generateKeyPair());
const node = (name: string, ip: string, podCIDRs: string[], annotations: Record<string, string> = {}): V1Node => ({
  metadata: { name, annotations },
  spec: { podCIDRs },
  status: { addresses: [{ type: "InternalIP", address: ip }] },
});
const wg = (k: number, ip: string) => ({ [WG_ANNOTATION.publicKey]: keys[k]!.publicKey, [WG_ANNOTATION.endpoint]: `${ip}:51820` });

describe("keys", () => {
  it("makes Curve25519 pairs whose public half is what `wg pubkey` derives", async () => {
    const k = generateKeyPair();
    expect(isWireguardKey(k.privateKey) && isWireguardKey(k.publicKey)).toBe(true);
    expect((await exec(["wg", "pubkey"], { input: `${k.privateKey}\n` })).stdout.trim()).toBe(k.publicKey);
  });

  it("keeps the private key in a 0600 file across loads, replaces a broken one, tightens a loose mode", () => {
    const path = join(dir, "sub", "private.key");
    const first = loadOrCreateKey(path);
    expect(first.made).toBe("missing");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadOrCreateKey(path)).toEqual({ ...first, made: undefined, tightened: false });
    chmodSync(path, 0o644);
    expect(loadOrCreateKey(path).tightened).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    writeFileSync(path, "garbage\n");
    const fresh = loadOrCreateKey(path);
    expect(fresh.made).toBe("invalid");
    expect(readFileSync(path, "utf8").trim()).toBe(fresh.privateKey);
    expect(loadOrCreateKey(path, true).publicKey).not.toBe(fresh.publicKey);
  });

  it("accepts only the base64 of 32 bytes", () => {
    expect(isWireguardKey(keys[0]!.publicKey)).toBe(true);
    for (const bad of ["", "not-a-key", keys[0]!.publicKey.slice(1), `${keys[0]!.publicKey.slice(0, 42)}B=`, Buffer.alloc(33).toString("base64")]) expect(isWireguardKey(bad)).toBe(false);
  });
});

describe("peers", () => {
  const view = buildView([
    node("a", "172.30.0.11", ["10.244.1.0/24", "fd00:1::/64"], wg(0, "172.30.0.11")),
    node("b", "172.30.0.12", ["10.244.2.0/24", "fd00:2::/64"], wg(1, "172.30.0.12")),
    node("c", "172.30.0.13", ["10.244.3.0/24"], { [WG_ANNOTATION.publicKey]: "tampered" }),
    node("d", "172.30.0.14", ["10.244.4.0/24"]),
    node("e", "172.30.0.15", ["10.244.5.0/24"], wg(1, "172.30.0.15")),
    node("f", "172.30.0.16", ["10.244.6.0/24"], { [WG_ANNOTATION.publicKey]: keys[3]!.publicKey, [WG_ANNOTATION.endpoint]: "nowhere" }),
  ]);
  const { peers, leftOut } = wireguardPeers(view, "a", keys[0]!.publicKey);

  it("gives a peer its endpoint and both families' pod CIDRs as allowed IPs", () => {
    expect(peers).toEqual([{ node: "b", publicKey: keys[1]!.publicKey, endpoint: "172.30.0.12:51820", allowedIps: ["10.244.2.0/24", "fd00:2::/64"] }]);
  });

  it("leaves out a missing, malformed or duplicated key and a bad endpoint, each with its code", () => {
    expect(leftOut.map((l) => [l.node, l.code])).toEqual([["c", "WG_KEY_INVALID"], ["d", "WG_NO_KEY"], ["e", "WG_KEY_CONFLICT"], ["f", "WG_NO_ENDPOINT"]]);
    expect(leftOut[2]!.reason).toContain("node b's");
  });

  it("routes encrypted peers' pod CIDRs into twill.wg, blackholes the left-out ones, and keeps the backend's other routes", () => {
    const backend = emptyState();
    backend.routes.push({ dst: "10.244.2.0/24", via: "10.244.2.0", dev: "twill.vxlan", onlink: true }, { dst: "10.244.3.0/24", via: "172.30.0.13", dev: "eth0", onlink: false }, { dst: "192.168.0.0/16", via: "172.30.0.1", dev: "eth0", onlink: false });
    const s = encryptedState(backend, view, "a", peers, leftOut);
    expect(s.routes).toEqual([
      { dst: "192.168.0.0/16", via: "172.30.0.1", dev: "eth0", onlink: false },
      { dst: "10.244.2.0/24", via: "", dev: "twill.wg", onlink: false },
      { dst: "fd00:2::/64", via: "", dev: "twill.wg", onlink: false },
      ...["10.244.3.0/24", "10.244.4.0/24", "10.244.5.0/24", "10.244.6.0/24"].map((dst) => ({ dst, via: "", dev: "", onlink: false, blackhole: true })),
    ]);
    expect(s.leftOut.map((l) => l.node)).toEqual(["c", "d", "e", "f"]);
  });

  it("takes endpoints in the kernel's spelling and the overhead by underlay family", () => {
    expect(parseEndpoint("[fd00:0::1]:51820")).toBe("[fd00::1]:51820");
    expect(parseEndpoint("1.2.3.4:0")).toBeUndefined();
    expect(wireguardOverhead("172.30.0.11")).toBe(60);
    expect(wireguardOverhead("fd00::1")).toBe(80);
  });
});

describe("device changes", () => {
  const peer = { node: "b", publicKey: keys[1]!.publicKey, endpoint: "172.30.0.12:51820", allowedIps: ["10.244.2.0/24"] };
  const have = { privateKey: keys[0]!.privateKey, listenPort: 51820, peers: [{ publicKey: keys[1]!.publicKey, endpoint: "172.30.0.12:51820", allowedIps: ["10.244.2.0/24"], lastHandshake: 1, rxBytes: 0, txBytes: 0 }] };

  it("writes nothing when the device is right (a restart re-keys no one)", () => {
    expect(uapiLines(deviceChanges({ privateKey: keys[0]!.privateKey, listenPort: 51820, peers: [peer] }, have))).toEqual([]);
  });

  it("replaces a rotated peer (remove the old key, add the new) and updates a moved one in place", () => {
    const c = deviceChanges({ privateKey: keys[0]!.privateKey, listenPort: 51820, peers: [{ ...peer, publicKey: keys[2]!.publicKey }] }, have);
    expect(uapiLines(c)).toEqual([`public_key=${hexKey(keys[1]!.publicKey)}`, "remove=true", `public_key=${hexKey(keys[2]!.publicKey)}`, "endpoint=172.30.0.12:51820", "replace_allowed_ips=true", "allowed_ip=10.244.2.0/24"]);
    const moved = deviceChanges({ privateKey: keys[0]!.privateKey, listenPort: 51820, peers: [{ ...peer, endpoint: "172.30.0.99:51820" }] }, have);
    expect(uapiLines(moved)).toContain("update_only=true");
    expect(wgSetArgs(moved, "/k")).toEqual(["peer", keys[1]!.publicKey, "endpoint", "172.30.0.99:51820", "allowed-ips", "10.244.2.0/24"]);
  });

  it("gives `wg` a new private key by its 0600 file, never on its command line", () => {
    const c = deviceChanges({ privateKey: keys[3]!.privateKey, listenPort: 51820, peers: [peer] }, have);
    expect(wgSetArgs(c, "/var/lib/twill/wireguard/private.key")).toEqual(["private-key", "/var/lib/twill/wireguard/private.key"]);
    expect(uapiLines(c)).toEqual([`private_key=${hexKey(keys[3]!.privateKey)}`]);
  });

  it("reads the device the same from UAPI and from `wg show dump`", () => {
    const uapi = `private_key=${hexKey(keys[0]!.privateKey)}\nlisten_port=51820\npublic_key=${hexKey(keys[1]!.publicKey)}\nendpoint=172.30.0.12:51820\nlast_handshake_time_sec=5\nrx_bytes=7\ntx_bytes=9\nallowed_ip=10.244.2.0/24\nerrno=0\n\n`;
    const dump = `${keys[0]!.privateKey}\t${keys[0]!.publicKey}\t51820\toff\n${keys[1]!.publicKey}\t(none)\t172.30.0.12:51820\t10.244.2.0/24\t5\t7\t9\toff\n`;
    expect(parseGet(uapi)).toEqual(parseDump(dump));
  });
});

describe("configuration and guard", () => {
  it("takes encryption: wireguard with its port and user-space switch, and refuses anything else", () => {
    expect(parseConfig("clusterCIDR: 10.244.0.0/16\n").encryption).toEqual({ mode: "none", wireguard: { port: 51820, userspace: false } });
    expect(parseConfig("clusterCIDR: 10.244.0.0/16\nencryption: wireguard\nwireguard: {port: 51821, userspace: true}\n").encryption).toEqual({ mode: "wireguard", wireguard: { port: 51821, userspace: true } });
    expect(() => parseConfig("clusterCIDR: 10.244.0.0/16\nencryption: ipsec\n")).toThrow(/encryption must be none or wireguard/);
    expect(() => parseConfig("clusterCIDR: 10.244.0.0/16\nencryption: wireguard\nwireguard: {port: 0}\n")).toThrow(/wireguard.port/);
  });

  it("drops traffic for other nodes' pods that would leave by any device but twill.wg, and lets this node's own pods be", () => {
    expect(guardRuleset("10.244.0.0/16", ["10.244.1.0/24", "fd00:1::/64"])).toContain('ip daddr 10.244.0.0/16 ip daddr != 10.244.1.0/24 oifname != "twill.wg" drop');
  });
});
