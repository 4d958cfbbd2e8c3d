import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { exec } from "../../lib/kernel/exec.ts";
import { CONTROL_PLANE_IP, labDir, ROUTER_IP, underlayNs } from "../../lab/names.ts";

// A packet capture on the lab's underlay bridge (inside the lab's underlay
// namespace): every packet between two nodes crosses it.

export interface Capture {
  /** Stops tcpdump and returns the raw pcap and one summary line per packet. */
  stop(): Promise<{ raw: Buffer; lines: string[] }>;
}

// Every IP packet but the control plane's and the router's own: pod addresses unencapsulated (host-gw, bgp, a
// packet sent in the clear to the default gateway) are in it as well as the nodes' tunnels. IPv6 link-local and
// multicast (the kernel's own neighbour discovery and MLD on eth0) carry no pod traffic.
const BETWEEN_NODES = `(ip or (ip6 and not net fe80::/10 and not ip6 multicast)) and not host ${ROUTER_IP} and not host ${CONTROL_PLANE_IP}`;

export async function captureUnderlay(lab: string): Promise<Capture> {
  // In the lab's directory: a capture a failed test never stopped goes with the lab (its tcpdump with the namespace).
  const file = join(labDir(lab), `wg-capture-${process.pid}-${Date.now()}.pcap`);
  // `ip netns exec`, not nsenter: libpcap reads the device from /sys, which only that remounts for the namespace.
  const child = spawn("ip", ["netns", "exec", underlayNs(lab), "tcpdump", "--immediate-mode", "-i", "br0", "-U", "-s", "0", "-w", file, BETWEEN_NODES], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      if (err.includes("listening on")) resolve();
    });
    child.on("exit", () => reject(new Error(`tcpdump exited: ${err}`)));
  });
  return {
    async stop() {
      child.kill("SIGINT");
      await exited;
      const raw = readFileSync(file);
      const lines = (await exec(["tcpdump", "-nr", file], { allowFailure: true })).stdout.trim().split("\n").filter(Boolean);
      rmSync(file, { force: true });
      return { raw, lines };
    },
  };
}

/** Summary lines that are not WireGuard's UDP port on both ends (BGP's TCP 179 sessions, when `allowBgp`). */
export function notWireguard(lines: string[], port = 51820, allowBgp = false): string[] {
  return lines.filter((l) => {
    const m = /IP6? \S+\.(\d+) > \S+\.(\d+): (UDP|Flags|\S+)/.exec(l);
    if (!m) return true;
    if (m[3] === "UDP" && Number(m[1]) === port && Number(m[2]) === port) return false;
    return !(allowBgp && (m[1] === "179" || m[2] === "179"));
  });
}
