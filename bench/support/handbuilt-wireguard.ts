import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec } from "../../lib/kernel/exec.ts";
import { buildReference, type RefTopology } from "./handbuilt.ts";

// The hand-built WireGuard reference: the routes topology of handbuilt.ts
// (pod veth → node → underlay bridge → node → pod veth) with a wireguard-go
// tunnel between the two nodes, configured with `wg` as an operator would,
// and the pods at the tunnel's MTU. Each node's wireguard-go runs in a mount
// namespace whose /run is a directory of its own, as the daemon's does.

export interface WireguardReference extends RefTopology {
  /** The nodes' namespaces (their wireguard-go processes' CPU is read from them). */
  nodes: string[];
}

const sh = (ns: string, runDir: string, script: string) => exec(["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "slave", "sh", "-c", `mount --bind "$0" /run && ${script}`, runDir]);

export async function buildWireguardReference(tag: string): Promise<WireguardReference> {
  // The routes shape without the routes between the nodes: those go into the tunnel.
  const topo = await buildReference("routes", tag);
  const ns = (n: string) => `${tag}-${n}`;
  const dirs: string[] = [];
  try {
    for (const i of [1, 2]) await exec(["ip", "netns", "exec", ns(`n${i}`), "ip", "route", "del", `10.251.${3 - i}.0/24`]);
    const keys = await Promise.all([1, 2].map(async () => {
      const priv = (await exec(["wg", "genkey"])).stdout.trim();
      return { priv, pub: (await exec(["wg", "pubkey"], { input: `${priv}\n` })).stdout.trim() };
    }));
    for (const i of [1, 2]) {
      const j = 3 - i;
      const dir = join(tmpdir(), `${tag}-wg${i}`);
      mkdirSync(dir, { recursive: true });
      dirs.push(dir);
      writeFileSync(join(dir, "private.key"), `${keys[i - 1]!.priv}\n`, { mode: 0o600 });
      await sh(ns(`n${i}`), dir, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go wg0 && sleep 0.2");
      // /run is the directory itself inside that mount namespace.
      await sh(ns(`n${i}`), dir, `wg set wg0 listen-port 51820 private-key /run/private.key peer ${keys[j - 1]!.pub} endpoint 172.31.0.${j}:51820 allowed-ips 10.251.${j}.0/24`);
      const n = ns(`n${i}`);
      for (const argv of [["ip", "link", "set", "wg0", "mtu", "1440", "up"], ["ip", "addr", "add", `10.251.${i}.0/32`, "dev", "wg0"], ["ip", "route", "add", `10.251.${j}.0/24`, "dev", "wg0"]]) await exec(["ip", "netns", "exec", n, ...argv]);
      await exec(["ip", "netns", "exec", ns(`p${i}`), "ip", "link", "set", "eth0", "mtu", "1440"]);
    }
  } catch (err) {
    await topo.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    throw err;
  }
  return {
    ...topo,
    nodes: [ns("n1"), ns("n2")],
    destroy: async () => {
      // Deleting the namespaces ends wireguard-go with them.
      await topo.destroy();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}
