import { exec } from "../../lib/kernel/exec.ts";
import { TwillError } from "../../lib/errors.ts";
import { uapiLines, wgSetArgs, type DeviceChanges } from "./device-diff.ts";
import { uapiGet, uapiSet, type WgDeviceState } from "./uapi.ts";

// The two ways to read and write a WireGuard device. wireguard-go serves the
// UAPI socket, which the daemon speaks itself (a read and a write take ~1 ms
// here; `wg` costs a process each, 20–50 ms on this machine). The kernel
// module speaks generic netlink only, which `wg` (wireguard-tools) talks for
// us; the same `wg` commands work against wireguard-go too, which is how that
// path is tested on this machine (whose kernel has no WireGuard module).

export interface WgControl {
  readonly kind: "uapi" | "wg";
  get(): Promise<WgDeviceState>;
  set(c: DeviceChanges): Promise<void>;
}

export function uapiControl(socketPath: string): WgControl {
  return { kind: "uapi", get: () => uapiGet(socketPath), set: (c) => uapiSet(socketPath, uapiLines(c)) };
}

const none = (v: string | undefined) => (v === undefined || v === "(none)" ? "" : v);

/** `wg show <dev> dump`: the device line, then one tab-separated line per peer. */
export function parseDump(text: string): WgDeviceState {
  const [first, ...rest] = text.trim().split("\n");
  const d = (first ?? "").split("\t");
  return {
    privateKey: none(d[0]),
    listenPort: Number(d[2] ?? 0),
    peers: rest.filter(Boolean).map((line) => {
      const f = line.split("\t");
      const ips = none(f[3]);
      return { publicKey: f[0]!, endpoint: none(f[2]), allowedIps: ips ? ips.split(",") : [], lastHandshake: Number(f[4] ?? 0), rxBytes: Number(f[5] ?? 0), txBytes: Number(f[6] ?? 0) };
    }),
  };
}

/** `wg` for a kernel device; `argv` prefixes the command (tests run it where wireguard-go's socket is). */
export function wgToolControl(dev: string, keyFile: string, argv: string[] = ["wg"]): WgControl {
  return {
    kind: "wg",
    async get() {
      const r = await exec([...argv, "show", dev, "dump"], { allowFailure: true });
      if (r.code !== 0) throw new TwillError("WG_TOOL", `wg show ${dev} failed: is wireguard-tools installed and the device there?`, r.stderr.trim());
      return parseDump(r.stdout);
    },
    async set(c) {
      const args = wgSetArgs(c, keyFile);
      if (args.length === 0) return;
      const r = await exec([...argv, "set", dev, ...args], { allowFailure: true });
      if (r.code !== 0) throw new TwillError("WG_TOOL", `wg set ${dev} failed; the next pass tries again`, r.stderr.trim());
    },
  };
}
