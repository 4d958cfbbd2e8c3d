import { hexKey } from "./keys.ts";
import type { WgPeer } from "./peers.ts";
import type { WgDeviceState } from "./uapi.ts";

// The WireGuard device's configuration as a desired set against what the
// device reports (pure): only what differs is written, so a restarted daemon
// that finds the device right writes nothing and no session is re-keyed.
// The difference is rendered for either control path: UAPI lines
// (wireguard-go) or `wg set` arguments (the kernel module, over netlink).

export interface WantedDevice {
  privateKey: string;
  listenPort: number;
  peers: WgPeer[];
}

export interface PeerOp {
  publicKey: string;
  remove?: boolean;
  /** A peer the device has already (its sessions stay). */
  existing?: boolean;
  endpoint?: string;
  allowedIps?: string[];
}

export interface DeviceChanges {
  privateKey?: string;
  listenPort?: number;
  peers: PeerOp[];
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",");

export function deviceChanges(want: WantedDevice, have: WgDeviceState): DeviceChanges {
  const out: DeviceChanges = { peers: [] };
  if (have.privateKey !== want.privateKey) out.privateKey = want.privateKey;
  if (have.listenPort !== want.listenPort) out.listenPort = want.listenPort;
  const havePeers = new Map(have.peers.map((p) => [p.publicKey, p]));
  const wantKeys = new Set(want.peers.map((p) => p.publicKey));
  for (const p of have.peers) if (!wantKeys.has(p.publicKey)) out.peers.push({ publicKey: p.publicKey, remove: true });
  for (const p of want.peers) {
    const h = havePeers.get(p.publicKey);
    if (h && h.endpoint === p.endpoint && sameSet(h.allowedIps, p.allowedIps)) continue;
    out.peers.push({ publicKey: p.publicKey, existing: !!h, endpoint: p.endpoint, allowedIps: p.allowedIps });
  }
  return out;
}

export const changeCount = (c: DeviceChanges) => (c.privateKey ? 1 : 0) + (c.listenPort ? 1 : 0) + c.peers.length;

/** The change as UAPI `set=1` lines (keys in hex). */
export function uapiLines(c: DeviceChanges): string[] {
  const lines: string[] = [];
  if (c.privateKey) lines.push(`private_key=${hexKey(c.privateKey)}`);
  if (c.listenPort) lines.push(`listen_port=${c.listenPort}`);
  for (const p of c.peers) {
    lines.push(`public_key=${hexKey(p.publicKey)}`);
    if (p.remove) {
      lines.push("remove=true");
      continue;
    }
    if (p.existing) lines.push("update_only=true");
    if (p.endpoint) lines.push(`endpoint=${p.endpoint}`);
    lines.push("replace_allowed_ips=true", ...(p.allowedIps ?? []).map((a) => `allowed_ip=${a}`));
  }
  return lines;
}

/**
 * The change as `wg set <dev> …` arguments. `wg` takes the private key only
 * from a file: the node's key file (mode 0600), so the key is never on a
 * command line or in a pipe (a pipe from node is a socket, which `wg` cannot open as /dev/stdin).
 */
export function wgSetArgs(c: DeviceChanges, keyFile: string): string[] {
  const args: string[] = [];
  if (c.privateKey) args.push("private-key", keyFile);
  if (c.listenPort) args.push("listen-port", String(c.listenPort));
  for (const p of c.peers) {
    args.push("peer", p.publicKey);
    if (p.remove) args.push("remove");
    else args.push(...(p.endpoint ? ["endpoint", p.endpoint] : []), "allowed-ips", (p.allowedIps ?? []).join(","));
  }
  return args;
}
