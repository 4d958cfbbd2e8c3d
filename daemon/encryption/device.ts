import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { IFF_UP } from "../../lib/netlink/rtnl.ts";
import { batch, readJson } from "../kernel/ip.ts";
import { readLink } from "../kernel/links.ts";
import { rtnl } from "../kernel/netlink-socket.ts";
import { uapiControl, wgToolControl, type WgControl } from "./control.ts";
import { WG_DEVICE } from "./peers.ts";

// The WireGuard device itself: the kernel's when the module is there
// (`ip link add … type wireguard`), else wireguard-go's TUN device when the
// operator opted in (wireguard.userspace). wireguard-go daemonizes and
// outlives the daemon, so a daemon restart keeps every session. Its control
// socket is always /var/run/wireguard/<dev>.sock; with a run directory of our
// own (the lab: several nodes on one machine) it runs in a mount namespace
// of its own whose /run is that directory, so nothing is made on the host's.

export interface DeviceOptions {
  userspace: boolean;
  /** "" = the machine's /run (a DaemonSet container has its own). */
  runDir: string;
  mtu: number;
  /** The private key's file (`wg` reads the key from it for a kernel device). */
  keyFile: string;
  /** Addresses on the device ("a.b.c.d/32"): node-sourced traffic into the tunnel leaves from the node's pod CIDR. */
  addresses: string[];
}

/**
 * wireguard-go's socket: always /var/run/wireguard/ (a constant in it, and in `wg`). On a host /var/run is a
 * link to /run, so with a run directory of our own bound on /run it lands there; an image without that link
 * (the lab's) gets a real /var/run.
 */
export const socketPath = (runDir: string) => (runDir ? join(runDir, "wireguard", `${WG_DEVICE}.sock`) : `/var/run/wireguard/${WG_DEVICE}.sock`);

async function startWireguardGo(runDir: string): Promise<void> {
  if (runDir) mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const argv = runDir
    ? ["unshare", "--mount", "--propagation", "slave", "sh", "-c", 'mount --bind "$1" /run && exec wireguard-go "$2"', "wireguard-go", runDir, WG_DEVICE]
    : ["wireguard-go", WG_DEVICE];
  // The banner wireguard-go prints on a kernel with WireGuard is not for us: it only starts when the kernel has none.
  const r = await exec(argv, { allowFailure: true, env: { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" } });
  if (r.code !== 0) throw new TwillError("WG_USERSPACE", "wireguard-go could not start: is it installed (Debian: wireguard-go) and /dev/net/tun there?", r.stderr.trim());
  for (let i = 0; i < 100 && !existsSync(socketPath(runDir)); i++) await new Promise((res) => setTimeout(res, 50));
  if (!existsSync(socketPath(runDir))) throw new TwillError("WG_USERSPACE", `wireguard-go started but its control socket ${socketPath(runDir)} did not appear within 5 s`);
}

/** Makes the device when it is missing; returns how to control it and whether it was made now. */
async function ensureExists(opts: DeviceOptions): Promise<{ control: WgControl; created: boolean }> {
  let link = await readLink(WG_DEVICE, rtnl);
  let created = false;
  if (!link) {
    const kernel = await exec(["ip", "link", "add", WG_DEVICE, "type", "wireguard"], { allowFailure: true });
    if (kernel.code !== 0) {
      if (!opts.userspace) throw new TwillError("WG_NO_KERNEL", `this kernel has no WireGuard module (${kernel.stderr.trim()}): load it (modprobe wireguard, Linux ≥ 5.6) or set wireguard.userspace: true in the twill-config ConfigMap to use wireguard-go`);
      await startWireguardGo(opts.runDir);
    }
    link = await readLink(WG_DEVICE, rtnl);
    if (!link) throw new TwillError("WG_DEVICE", `the WireGuard device ${WG_DEVICE} did not appear after it was made`);
    created = true;
  }
  if (link.kind === "wireguard") return { control: wgToolControl(WG_DEVICE, opts.keyFile), created };
  if (!existsSync(socketPath(opts.runDir))) throw new TwillError("WG_DEVICE", `${WG_DEVICE} exists but is no kernel WireGuard device and has no control socket at ${socketPath(opts.runDir)}: delete it (ip link del ${WG_DEVICE}) and the daemon makes it again`);
  return { control: uapiControl(socketPath(opts.runDir)), created };
}

/** The device made, up, with its MTU and addresses; returns the control path and the `ip` commands written. */
export async function ensureDevice(opts: DeviceOptions, verify: boolean): Promise<{ control: WgControl; changes: number; created: boolean }> {
  const { control, created } = await ensureExists(opts);
  if (!created && !verify) return { control, changes: 0, created };
  const link = (await readLink(WG_DEVICE, rtnl))!;
  const lines: string[] = [];
  if (link.mtu !== opts.mtu) lines.push(`link set ${WG_DEVICE} mtu ${opts.mtu}`);
  if (!(link.flags & IFF_UP)) lines.push(`link set ${WG_DEVICE} up`);
  const have = new Set((await readJson<{ addr_info?: { local: string; prefixlen: number; scope: string }[] }>(["ip", "-json", "addr", "show", "dev", WG_DEVICE])).flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope !== "link").map((a) => `${a.local}/${a.prefixlen}`)));
  for (const a of opts.addresses) if (!have.has(a)) lines.push(`addr add ${a} dev ${WG_DEVICE}`);
  for (const a of have) if (!opts.addresses.includes(a)) lines.push(`addr del ${a} dev ${WG_DEVICE}`);
  return { control, changes: await batch("ip", lines), created };
}

/** Encryption turned off: the device goes (wireguard-go exits with it); returns whether there was one. */
export async function removeDevice(): Promise<boolean> {
  if (!(await readLink(WG_DEVICE, rtnl))) return false;
  await exec(["ip", "link", "del", WG_DEVICE], { allowFailure: true });
  return true;
}
