import { existsSync } from "node:fs";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import { formatIp, parseCidr } from "../../lib/net/cidr.ts";
import type { LocalNode } from "../backends/backend.ts";
import { publishAnnotations } from "../cluster/self.ts";
import type { ClusterView } from "../cluster/view.ts";
import type { DesiredState } from "../kernel/desired.ts";
import { changeCount, deviceChanges } from "./device-diff.ts";
import { ensureDevice, removeDevice } from "./device.ts";
import { LeftOutEvents } from "./events.ts";
import { Guard, guardRuleset, removeGuard } from "./guard.ts";
import { loadOrCreateKey, type KeyPair } from "./keys.ts";
import type { WgDeviceState } from "./uapi.ts";
import { encryptedState, endpointOf, WG_ANNOTATION, wireguardOverhead, wireguardPeers } from "./peers.ts";

// `encryption: wireguard`, on top of whichever backend connects the nodes
// (docs/encryption.md): each pass the agent hands over the backend's desired
// state and gets it back with every peer's pod CIDRs routed into the
// WireGuard device (or blackholed), after the device holds this node's key
// and the peers' keys; then this node's key and endpoint are published.

export interface WireguardConfig {
  port: number;
  /** Use wireguard-go when the kernel has no WireGuard module. */
  userspace: boolean;
}

export interface WireguardSettings {
  keyFile: string;
  /** wireguard-go's /run ("" = the machine's). */
  runDir: string;
}

export class WireguardEncryption {
  private key: KeyPair | undefined;
  /** The rotate annotation value acted on (the watch's copy of our Node lags behind our own patch). */
  private rotatedFor: string | undefined;
  private readonly guard = new Guard();
  /** What was last published (the watch's copy of our Node lags: a second patch is harmless, a second log line is noise). */
  private published = "";
  private events: LeftOutEvents | undefined;
  /** The device's configuration as the last pass left it: event passes diff against it instead of reading the device (`wg` is a process per read). */
  private device: WgDeviceState | undefined;

  private readonly cfg: WireguardConfig;
  private readonly settings: WireguardSettings;
  private readonly kc: KubeConfig;
  private readonly log: Logger;

  constructor(cfg: WireguardConfig, settings: WireguardSettings, kc: KubeConfig, log: Logger) {
    this.cfg = cfg;
    this.settings = settings;
    this.kc = kc;
    this.log = log;
  }

  deviceMtu(local: LocalNode): number {
    return local.underlay.mtu - wireguardOverhead(local.info.ip);
  }

  /** Pods' MTU: what the backend allows, and no more than fits in the tunnel. */
  podMtu(plain: number, local: LocalNode): number {
    return Math.min(plain, this.deviceMtu(local));
  }

  private currentKey(local: LocalNode): KeyPair {
    const ask = local.info.annotations[WG_ANNOTATION.rotate];
    const rotate = ask !== undefined && ask !== (this.rotatedFor ?? local.info.annotations[WG_ANNOTATION.rotated]);
    // The file is looked at every pass: removing it is how an operator asks for a new key.
    if (this.key && !rotate && existsSync(this.settings.keyFile)) return this.key;
    const k = loadOrCreateKey(this.settings.keyFile, rotate);
    const first = !this.key;
    if (rotate) this.rotatedFor = ask;
    if (k.made === "invalid") this.log.warn({ code: "WG_KEY_FILE_INVALID", path: this.settings.keyFile, publicKey: k.publicKey }, "the WireGuard key file held no valid key: made a new key pair (peers re-key to it)");
    else if (k.made === "rotation") this.log.info({ publicKey: k.publicKey, trigger: WG_ANNOTATION.rotate }, "WireGuard key rotated on request");
    else if (k.made === "missing") this.log.info({ path: this.settings.keyFile, publicKey: k.publicKey }, first ? "made this node's WireGuard key pair" : "the WireGuard key file was removed: key rotated");
    else if (first) this.log.info({ path: this.settings.keyFile, publicKey: k.publicKey }, "WireGuard key pair loaded");
    if (k.tightened) this.log.warn({ code: "WG_KEY_FILE_MODE", path: this.settings.keyFile }, "the WireGuard key file was readable by others: made it 0600");
    this.key = { privateKey: k.privateKey, publicKey: k.publicKey };
    return this.key;
  }

  /** Key, device and peers for this pass; returns the backend's state with peers' routes through the tunnel. */
  async apply(backend: DesiredState, view: ClusterView, local: LocalNode, verify: boolean): Promise<{ state: DesiredState; changes: number; peers: number }> {
    const self = local.info;
    const key = this.currentKey(local);
    const addresses = self.podCIDRs.map((c) => {
      const p = parseCidr(c);
      return `${formatIp(p.family, p.network)}/${p.family === 4 ? 32 : 128}`;
    });
    const device = await ensureDevice({ userspace: this.cfg.userspace, runDir: this.settings.runDir, keyFile: this.settings.keyFile, mtu: this.deviceMtu(local), addresses }, verify);
    const { peers, leftOut } = wireguardPeers(view, self.name, key.publicKey);
    (this.events ??= new LeftOutEvents(this.kc, this.log, self.name)).update(leftOut);
    const want = { privateKey: key.privateKey, listenPort: this.cfg.port, peers };
    // A verifying pass, a new device or a failed write reads the device again (drift by hand heals within a resync period).
    const have = verify || device.created || !this.device ? await device.control.get() : this.device;
    this.device = undefined;
    const diff = deviceChanges(want, have);
    await device.control.set(diff);
    this.device = { privateKey: want.privateKey, listenPort: want.listenPort, peers: peers.map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint, allowedIps: p.allowedIps, lastHandshake: 0, rxBytes: 0, txBytes: 0 })) };
    const peerOps = diff.peers.length;
    if (peerOps) this.log.info({ added: diff.peers.filter((p) => !p.remove && !p.existing).length, updated: diff.peers.filter((p) => p.existing).length, removed: diff.peers.filter((p) => p.remove).length, via: device.control.kind }, "WireGuard peers reconciled");
    // Published after the device holds the key, so a peer never sends to a key we cannot answer for.
    const wanted: Record<string, string> = { [WG_ANNOTATION.publicKey]: key.publicKey, [WG_ANNOTATION.endpoint]: endpointOf(self.ip, this.cfg.port) };
    if (this.rotatedFor !== undefined) wanted[WG_ANNOTATION.rotated] = this.rotatedFor;
    if ((await publishAnnotations(this.kc, self, wanted)) && JSON.stringify(wanted) !== this.published) this.log.info({ publicKey: key.publicKey, endpoint: wanted[WG_ANNOTATION.endpoint] }, "published this node's WireGuard key and endpoint");
    this.published = JSON.stringify(wanted);
    return { state: encryptedState(backend, view, self.name, peers, leftOut), changes: device.changes + changeCount(diff), peers: peers.length };
  }

  /** The fail-closed nft table; `trustMemory` on event passes. */
  reconcileGuard(clusterCIDR: string, local: LocalNode, trustMemory: boolean): Promise<number> {
    return this.guard.reconcile(guardRuleset(clusterCIDR, local.info.podCIDRs), trustMemory);
  }
}

/**
 * With `encryption: none`, what an earlier run with encryption left: the
 * device, and the fail-closed table (which would otherwise drop every
 * packet to another node's pods now that they no longer go through the tunnel).
 */
export async function removeEncryption(log: Logger): Promise<void> {
  const device = await removeDevice();
  const table = await removeGuard();
  if (device || table) log.info({ device, table }, "encryption is off: removed the WireGuard device and its fail-closed table");
}
