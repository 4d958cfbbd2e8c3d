import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { addNetns, deleteNetns, execIn, netnsPath } from "../../lib/kernel/netns.ts";

export const REPO = resolve(import.meta.dirname, "../..");
export const TWILL_BIN = join(REPO, "dist/cni/twill");
export const CNI_PATH = `${join(REPO, "dist/cni")}:/usr/lib/cni`;

export interface CniRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- spec objects of every version
}

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** Extra or overriding environment. */
  env?: Record<string, string | undefined>;
  stdin: string | object;
  /** Plugin executable; default dist/cni/twill. */
  bin?: string;
}

/** Runs a CNI plugin inside the node namespace exactly as a runtime would: environment + stdin. */
export function runCni(nodeNs: string, call: CniCall, onSpawn?: (pid: number) => void): Promise<CniRun> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", CNI_COMMAND: call.command, CNI_PATH };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  for (const [k, v] of Object.entries(call.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const input = typeof call.stdin === "string" ? call.stdin : JSON.stringify(call.stdin);
  return new Promise((res, rej) => {
    // nsenter keeps the plugin's own pid (no wrapper process in between), so a test can kill -9 it.
    const child = spawn("nsenter", [`--net=${netnsPath(nodeNs)}`, call.bin ?? TWILL_BIN], { env, stdio: ["pipe", "pipe", "pipe"] });
    if (child.pid && onSpawn) onSpawn(child.pid);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", rej);
    child.on("close", (code, signal) => {
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      res({ code: code ?? (signal ? 137 : 1), stdout, stderr, json });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

let seq = 0;
/** A unique, short name for this test process (namespaces must not collide across parallel files). */
export function uniqueName(prefix: string): string {
  seq += 1;
  return `${prefix}-${process.pid.toString(36)}${seq.toString(36)}${Math.random().toString(36).slice(2, 5)}`;
}

/** A "node" namespace with forwarding on, plus a scratch directory for its files. */
export class NodeFixture {
  readonly ns: string;
  readonly dir: string;
  private readonly pods: string[] = [];

  constructor(prefix = "tcn") {
    this.ns = uniqueName(prefix);
    this.dir = mkdtempSync(join(tmpdir(), "twill-test-"));
  }

  /** `forwarding: false` leaves the namespace's global forwarding off (the kernel's default), as on a node no daemon prepared. */
  async start(opts: { forwarding?: boolean } = {}): Promise<this> {
    await addNetns(this.ns);
    if (opts.forwarding !== false) await execIn(this.ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // A node has an address of its own (its underlay IP); traffic from the
    // node to its pods uses it as the source.
    await execIn(this.ns, ["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
    return this;
  }

  /** A new empty pod namespace; returns its path (what a runtime puts in CNI_NETNS). */
  async pod(): Promise<{ name: string; path: string }> {
    const name = uniqueName("tpd");
    await addNetns(name);
    this.pods.push(name);
    return { name, path: netnsPath(name) };
  }

  async removePod(name: string): Promise<void> {
    await deleteNetns(name);
  }

  async stop(): Promise<void> {
    for (const p of this.pods) await deleteNetns(p);
    await deleteNetns(this.ns);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
