import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setGso } from "../../lab/topology.ts";
import { addNetns, deleteNetns, execIn } from "../../lib/kernel/netns.ts";

// Reference topologies built by hand with `ip`, shaped like the lab's path
// (pod veth → node → underlay bridge → node → pod veth), so Twill's dataplane
// can be compared with the same kernel doing the same work without Twill.

/**
 * "-nat": the reference plus one masquerade rule per node, so conntrack runs as it must under any NAT-ing CNI.
 * "routes-nat-bpf": that, plus bpf-fastpath.ts on both nodes' devices: established TCP segments skip netfilter
 * and the forwarding path, the most a conntrack offload could give back.
 * "-big": every device on the path (pods' veths, nodes' underlay links) takes BIG TCP packets up to BIG_TCP bytes.
 */
export type Reference = "veth" | "routes" | "routes-nat" | "routes-nat-bpf" | "routes-big" | "routes-nat-big" | "vxlan" | "vxlan-nat";

/** The GSO/GRO size BIG TCP runs use (a common production setting). */
export const BIG_TCP = 196608;

const BUN = join(import.meta.dirname, "../../node_modules/@oven/bun-linux-x64/bin/bun");

/** Starts bpf-fastpath.ts in `ns` on `devs`; resolves once the program is attached. */
async function attachFastPath(ns: string, devs: string[]): Promise<ChildProcess> {
  const p = spawn("ip", ["netns", "exec", ns, BUN, join(import.meta.dirname, "bpf-fastpath.ts"), ...devs], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  p.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once("data", () => resolve());
    p.once("exit", (code) => reject(new Error(`bpf-fastpath.ts in ${ns} exited (${code}): ${stderr.trim()}`)));
  });
  return p;
}

export interface RefTopology {
  client: string;
  server: string;
  serverIp: string;
  destroy(): Promise<void>;
}

export async function buildReference(kind: Reference, tag: string): Promise<RefTopology> {
  const ns = (n: string) => `${tag}-${n}`;
  const made: string[] = [];
  const programs: ChildProcess[] = [];
  const add = async (n: string) => {
    await addNetns(ns(n));
    made.push(ns(n));
  };
  const destroy = async () => {
    for (const p of programs) p.kill();
    for (const n of made.reverse()) await deleteNetns(n);
  };
  try {
    if (kind === "veth") {
      await add("a");
      await add("b");
      await execIn(ns("a"), ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", ns("b")]);
      await execIn(ns("a"), ["ip", "addr", "add", "10.250.0.1/24", "dev", "eth0"]);
      await execIn(ns("b"), ["ip", "addr", "add", "10.250.0.2/24", "dev", "eth0"]);
      await execIn(ns("a"), ["ip", "link", "set", "eth0", "up"]);
      await execIn(ns("b"), ["ip", "link", "set", "eth0", "up"]);
      return { client: ns("a"), server: ns("b"), serverIp: "10.250.0.2", destroy };
    }
    await add("ul");
    await execIn(ns("ul"), ["ip", "link", "add", "br0", "type", "bridge"]);
    await execIn(ns("ul"), ["ip", "link", "set", "br0", "up"]);
    for (const i of [1, 2]) {
      const node = `n${i}`;
      const pod = `p${i}`;
      await add(node);
      await add(pod);
      await execIn(ns("ul"), ["ip", "link", "add", node, "type", "veth", "peer", "name", "eth0", "netns", ns(node)]);
      await execIn(ns("ul"), ["ip", "link", "set", node, "master", "br0", "up"]);
      await execIn(ns(node), ["ip", "addr", "add", `172.31.0.${i}/24`, "dev", "eth0"]);
      await execIn(ns(node), ["ip", "link", "set", "eth0", "up"]);
      await execIn(ns(node), ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      await execIn(ns(node), ["ip", "link", "add", "hv", "type", "veth", "peer", "name", "eth0", "netns", ns(pod)]);
      await execIn(ns(node), ["ip", "link", "set", "hv", "up"]);
      await execIn(ns(pod), ["ip", "addr", "add", `10.251.${i}.2/32`, "dev", "eth0"]);
      await execIn(ns(pod), ["ip", "link", "set", "eth0", "up"]);
      await execIn(ns(pod), ["ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"]);
      await execIn(ns(pod), ["ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"]);
      const hostMac = (await execIn(ns(node), ["cat", "/sys/class/net/hv/address"])).stdout.trim();
      await execIn(ns(pod), ["ip", "neigh", "replace", "169.254.1.1", "lladdr", hostMac, "dev", "eth0", "nud", "permanent"]);
      await execIn(ns(node), ["ip", "route", "add", `10.251.${i}.2/32`, "dev", "hv"]);
    }
    if (kind.startsWith("routes")) {
      await execIn(ns("n1"), ["ip", "route", "add", "10.251.2.0/24", "via", "172.31.0.2"]);
      await execIn(ns("n2"), ["ip", "route", "add", "10.251.1.0/24", "via", "172.31.0.1"]);
    } else {
      for (const [i, j] of [[1, 2], [2, 1]] as const) {
        const n = ns(`n${i}`);
        await execIn(n, ["ip", "link", "add", "vx", "address", `02:00:00:00:00:0${i}`, "mtu", "1450", "type", "vxlan", "id", "1", "local", `172.31.0.${i}`, "dev", "eth0", "dstport", "8472", "nolearning"]);
        await execIn(n, ["ip", "link", "set", "vx", "up"]);
        await execIn(n, ["ip", "addr", "add", `10.251.${i}.0/32`, "dev", "vx"]);
        await execIn(n, ["ip", "neigh", "replace", `10.251.${j}.0`, "lladdr", `02:00:00:00:00:0${j}`, "dev", "vx", "nud", "permanent"]);
        await execIn(n, ["bridge", "fdb", "append", `02:00:00:00:00:0${j}`, "dev", "vx", "dst", `172.31.0.${j}`, "self", "permanent"]);
        await execIn(n, ["ip", "route", "add", `10.251.${j}.0/24`, "via", `10.251.${j}.0`, "dev", "vx", "onlink"]);
        // Pods use the tunnel's MTU, as Twill's pods do.
        await execIn(ns(`p${i}`), ["ip", "link", "set", "eth0", "mtu", "1450"]);
      }
    }
    if (kind.includes("-nat")) {
      for (const i of [1, 2]) {
        await execIn(ns(`n${i}`), ["nft", "-f", "-"], {
          // The same rules Twill's masquerade table holds: NAT to outside, no tracking of the tunnel's own UDP.
          input: [
            "table ip handnat {",
            "  chain post { type nat hook postrouting priority srcnat; ip saddr 10.251.0.0/16 ip daddr != 10.251.0.0/16 masquerade; }",
            `  chain rawin { type filter hook prerouting priority raw; ip daddr 172.31.0.${i} udp dport 8472 notrack; }`,
            `  chain rawout { type filter hook output priority raw; ip saddr 172.31.0.${i} udp dport 8472 meta skuid >= 0 accept; ip saddr 172.31.0.${i} udp dport 8472 notrack; }`,
            "}",
            "",
          ].join("\n"),
        });
      }
    }
    if (kind.endsWith("-bpf")) for (const i of [1, 2]) programs.push(await attachFastPath(ns(`n${i}`), ["hv", "eth0"]));
    if (kind.endsWith("-big")) {
      for (const i of [1, 2]) {
        await setGso(ns(`p${i}`), BIG_TCP, ["eth0"]);
        await setGso(ns(`n${i}`), BIG_TCP, ["hv", "eth0"]);
        await setGso(ns("ul"), BIG_TCP, [`n${i}`]);
      }
    }
    return { client: ns("p1"), server: ns("p2"), serverIp: "10.251.2.2", destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}
