import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec } from "../../../lib/kernel/exec.ts";
import { execIn } from "../../../lib/kernel/netns.ts";

// The reference BGP daemons from Debian, each run in a test's namespace with
// its config, control socket and pid file in the test's temp dir (never the
// system services), and queried through its own CLI.

export interface PeerDaemon {
  /** Prefixes in the daemon's table learned over BGP (BIRD: from any neighbour), with their next hop. */
  learned(): Promise<Map<string, string>>;
  /** Whether the session to Twill is established, from the daemon's own view. */
  established(): Promise<boolean>;
  announce(prefix: string): Promise<void>;
  withdraw(prefix: string): Promise<void>;
  stop(): Promise<void>;
  /** Shuts down announcing a graceful restart (peers keep its routes); BIRD only. */
  gracefulStop?(): Promise<void>;
  log(): string;
}

interface Opts {
  ns: string;
  dir: string;
  asn: number;
  routerId: string;
  twill: { address: string; asn: number };
  holdTime: number;
  announce: string[];
  /** BIRD reflects routes between Twill and these further iBGP neighbours (RFC 4456). */
  clients?: string[];
  /** TCP MD5 (RFC 2385) key for the session with Twill; BIRD only. */
  password?: string;
}

function run(ns: string, argv: string[]): { child: ChildProcess; out: () => string } {
  let out = "";
  const child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  return { child, out: () => out };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once("exit", () => r());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 3000).unref();
  });
}

const PREFIX = /^(\d+\.\d+\.\d+\.\d+\/\d+)/;

// --- BIRD 2 ---

export async function startBird(o: Opts): Promise<PeerDaemon> {
  const dir = join(o.dir, `bird-${o.ns}`);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "bird.conf");
  const sock = join(dir, "bird.ctl");
  const statics = new Set(o.announce);
  const write = () =>
    writeFileSync(conf, `
router id ${o.routerId};
log "${join(dir, "bird.log")}" all;
protocol device {}
protocol static s4 {
  ipv4;
${[...statics].map((p) => `  route ${p} blackhole;`).join("\n")}
}
protocol bgp twill {
  local as ${o.asn};
  neighbor ${o.twill.address} as ${o.twill.asn};
  hold time ${o.holdTime};
  connect retry time 2;
  error wait time 1, 2;
  graceful restart on;
  ${o.clients ? "rr client;" : ""}
  ${o.password ? `password "${o.password}";` : ""}
  ${o.asn === o.twill.asn ? "direct;" : ""}
  ipv4 { import all; export all; };
}
${(o.clients ?? []).map((c, i) => `protocol bgp client${i + 1} {
  local as ${o.asn};
  neighbor ${c} as ${o.asn};
  rr client;
  direct;
  hold time ${o.holdTime};
  connect retry time 2;
  ipv4 { import all; export all; };
}`).join("\n")}
`);
  write();
  const proc = run(o.ns, ["bird", "-f", "-c", conf, "-s", sock, "-P", join(dir, "bird.pid")]);
  const birdc = async (...args: string[]) => (await execIn(o.ns, ["birdc", "-s", sock, ...args])).stdout;
  // Ready when the control socket answers.
  for (let i = 0; ; i++) {
    if ((await execIn(o.ns, ["birdc", "-s", sock, "show", "status"], { allowFailure: true })).code === 0) break;
    if (i === 50 || proc.child.exitCode !== null) throw new Error(`BIRD did not start: ${proc.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const reconfigure = async () => {
    write();
    await birdc("configure");
  };
  return {
    async learned() {
      // Every route with a gateway: BIRD's own statics are blackholes, so these are the learned ones.
      const out = await birdc("show", "route");
      const routes = new Map<string, string>();
      let last: string | undefined;
      for (const line of out.split("\n")) {
        const m = PREFIX.exec(line);
        if (m) last = m[1];
        const via = /via (\S+)/.exec(line);
        if (last && via) routes.set(last, via[1]!);
      }
      return routes;
    },
    async established() {
      return /Established/.test(await birdc("show", "protocols", "twill"));
    },
    async announce(p) {
      statics.add(p);
      await reconfigure();
    },
    async withdraw(p) {
      statics.delete(p);
      await reconfigure();
    },
    stop: () => stopChild(proc.child),
    async gracefulStop() {
      const exited = new Promise<void>((r) => (proc.child.exitCode !== null ? r() : proc.child.once("exit", () => r())));
      await execIn(o.ns, ["birdc", "-s", sock, "graceful", "restart"], { allowFailure: true });
      await exited;
    },
    log: proc.out,
  };
}

// --- GoBGP ---

export async function startGobgp(o: Opts): Promise<PeerDaemon> {
  const dir = join(o.dir, `gobgp-${o.ns}`);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "gobgpd.toml");
  writeFileSync(conf, `
[global.config]
  as = ${o.asn}
  router-id = "${o.routerId}"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${o.twill.address}"
    peer-as = ${o.twill.asn}
  [neighbors.timers.config]
    hold-time = ${o.holdTime}
    keepalive-interval = ${Math.max(1, Math.floor(o.holdTime / 3))}
    connect-retry = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`);
  const api = "127.0.0.1:50051";
  const proc = run(o.ns, ["gobgpd", "-f", conf, "-t", "toml", "--api-hosts", api, "--pprof-disable"]);
  const gobgp = async (...args: string[]) => (await execIn(o.ns, ["gobgp", "-u", "127.0.0.1", "-p", "50051", ...args])).stdout;
  for (let i = 0; i < 50; i++) {
    if ((await execIn(o.ns, ["gobgp", "-u", "127.0.0.1", "-p", "50051", "global"], { allowFailure: true })).code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const p of o.announce) await gobgp("global", "rib", "add", p, "-a", "ipv4");
  return {
    async learned() {
      const out = await gobgp("neighbor", o.twill.address, "adj-in", "-a", "ipv4", "-j");
      const routes = new Map<string, string>();
      const table = (out.trim() ? JSON.parse(out) : {}) as Record<string, { nlri: { prefix: string }; attrs: { type: number; nexthop?: string }[] }[]>;
      for (const [prefix, paths] of Object.entries(table)) {
        const nh = paths[0]?.attrs.find((a) => a.type === 3)?.nexthop;
        routes.set(prefix, nh ?? "");
      }
      return routes;
    },
    async established() {
      const out = JSON.parse(await gobgp("neighbor", o.twill.address, "-j")) as { state?: { session_state?: number | string } };
      const s = out.state?.session_state;
      return s === 6 || s === "established" || s === "ESTABLISHED";
    },
    async announce(p) {
      await gobgp("global", "rib", "add", p, "-a", "ipv4");
    },
    async withdraw(p) {
      await gobgp("global", "rib", "del", p, "-a", "ipv4");
    },
    stop: () => stopChild(proc.child),
    log: proc.out,
  };
}

// --- FRR bgpd (without zebra) ---

export async function startFrr(o: Opts): Promise<PeerDaemon> {
  const dir = join(o.dir, `frr-${o.ns}`);
  mkdirSync(dir, { recursive: true });
  await exec(["chmod", "777", dir]);
  const conf = join(dir, "bgpd.conf");
  const networks = new Set(o.announce);
  writeFileSync(conf, `
hostname ${o.ns}
log file ${join(dir, "bgpd.log")}
router bgp ${o.asn}
 bgp router-id ${o.routerId}
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 neighbor ${o.twill.address} remote-as ${o.twill.asn}
 neighbor ${o.twill.address} timers ${Math.max(1, Math.floor(o.holdTime / 3))} ${o.holdTime}
 neighbor ${o.twill.address} timers connect 2
 address-family ipv4 unicast
${[...networks].map((p) => `  network ${p}`).join("\n")}
 exit-address-family
`);
  const proc = run(o.ns, ["/usr/lib/frr/bgpd", "-f", conf, "-i", join(dir, "bgpd.pid"), "--vty_socket", dir, "-Z", "-u", "frr", "-g", "frr", "-A", "127.0.0.1", "-P", "0"]);
  const vtysh = async (...cmds: string[]) => (await execIn(o.ns, ["vtysh", "--vty_socket", dir, "-d", "bgpd", ...cmds.flatMap((c) => ["-c", c])])).stdout;
  for (let i = 0; i < 50; i++) {
    if ((await execIn(o.ns, ["vtysh", "--vty_socket", dir, "-d", "bgpd", "-c", "show bgp summary"], { allowFailure: true })).code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const config = (...lines: string[]) => vtysh("configure terminal", `router bgp ${o.asn}`, "address-family ipv4 unicast", ...lines);
  return {
    async learned() {
      const out = JSON.parse(await vtysh(`show bgp ipv4 unicast neighbors ${o.twill.address} routes json`)) as { routes?: Record<string, { nexthops?: { ip: string }[] }[]> };
      const routes = new Map<string, string>();
      for (const [prefix, paths] of Object.entries(out.routes ?? {})) routes.set(prefix, paths[0]?.nexthops?.[0]?.ip ?? "");
      return routes;
    },
    async established() {
      const out = JSON.parse(await vtysh(`show bgp neighbors ${o.twill.address} json`)) as Record<string, { bgpState?: string }>;
      return out[o.twill.address]?.bgpState === "Established";
    },
    async announce(p) {
      await config(`network ${p}`);
    },
    async withdraw(p) {
      await config(`no network ${p}`);
    },
    stop: () => stopChild(proc.child),
    log: proc.out,
  };
}
