import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addNetns, deleteNetns } from "../../lib/kernel/netns.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { uapiControl, wgToolControl, type WgControl } from "../../daemon/encryption/control.ts";
import { deviceChanges } from "../../daemon/encryption/device-diff.ts";
import { socketPath } from "../../daemon/encryption/device.ts";
import { generateKeyPair } from "../../daemon/encryption/keys.ts";
import { WG_DEVICE } from "../../daemon/encryption/peers.ts";
import type { WgDeviceState } from "../../daemon/encryption/uapi.ts";

// Both control paths against one real wireguard-go device in a namespace of
// the test's own: the daemon's UAPI client, and `wg` (what a kernel device is
// configured with; this kernel has no WireGuard module, so `wg` is tested
// against wireguard-go here). Each must read what the other wrote.

const ns = `wg-ctl-${process.pid}`;
const run = mkdtempSync(join(tmpdir(), "wg-ctl-run-"));
const keyFile = join(run, "private.key");
const inRun = (cmd: string) => ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "slave", "sh", "-c", `mount --bind "$0" /run && ${cmd}`, run];
let uapi: WgControl;
let tool: WgControl;

beforeAll(async () => {
  await addNetns(ns);
  await exec(inRun(`WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 exec wireguard-go ${WG_DEVICE}`));
  uapi = uapiControl(socketPath(run));
  // `wg` finds the socket under /run/wireguard: the same private /run as wireguard-go's.
  tool = wgToolControl(WG_DEVICE, keyFile, inRun('exec wg "$@"'));
});
afterAll(async () => {
  await deleteNetns(ns);
  rmSync(run, { recursive: true, force: true });
});

const byKey = (a: { publicKey: string }, b: { publicKey: string }) => a.publicKey.localeCompare(b.publicKey);
const sorted = (d: WgDeviceState): WgDeviceState => ({ ...d, peers: [...d.peers].sort(byKey) });
const peers = Array.from({ length: 3 }, (_, i) => ({ node: `n${i}`, publicKey: generateKeyPair().publicKey, endpoint: `172.30.0.${20 + i}:51820`, allowedIps: [`10.244.${i}.0/24`] }));

describe("WireGuard control paths", () => {
  it("UAPI writes a key, port and peers that `wg show dump` reads back alike, and the reverse", async () => {
    const self = generateKeyPair();
    writeFileSync(keyFile, `${self.privateKey}\n`, { mode: 0o600 });
    await uapi.set(deviceChanges({ privateKey: self.privateKey, listenPort: 51820, peers: peers.slice(0, 2) }, await uapi.get()));
    // Peers in key order: wireguard-go lists them from a map, in no fixed order.
    const viaTool = sorted(await tool.get());
    expect(viaTool).toEqual(sorted(await uapi.get()));
    expect(viaTool.privateKey).toBe(self.privateKey);
    expect(viaTool.peers.map((p) => [p.publicKey, p.endpoint, p.allowedIps])).toEqual(peers.slice(0, 2).sort(byKey).map((p) => [p.publicKey, p.endpoint, p.allowedIps]));

    const rotated = generateKeyPair();
    writeFileSync(keyFile, `${rotated.privateKey}\n`, { mode: 0o600 });
    const want = { privateKey: rotated.privateKey, listenPort: 51821, peers: [peers[1]!, { ...peers[2]!, allowedIps: ["10.244.2.0/24", "fd00:2::/64"] }] };
    await tool.set(deviceChanges(want, await tool.get()));
    const viaUapi = await uapi.get();
    expect(viaUapi.privateKey).toBe(rotated.privateKey);
    expect(viaUapi.listenPort).toBe(51821);
    expect(viaUapi.peers.map((p) => [p.publicKey, p.allowedIps.sort()]).sort()).toEqual(want.peers.map((p) => [p.publicKey, p.allowedIps.sort()]).sort());
    expect(deviceChanges(want, viaUapi).peers).toEqual([]);
  });
});
