import { existsSync } from "node:fs";
import { exec, type ExecOptions, type ExecResult } from "./exec.ts";

// Named network namespaces (/var/run/netns/NAME), the unit every lab host, pod
// and test fixture is made of.

export const NETNS_DIR = "/var/run/netns";

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

export async function addNetns(name: string): Promise<void> {
  await exec(["ip", "netns", "add", name]);
  await exec(["ip", "-n", name, "link", "set", "lo", "up"]);
}

/**
 * Removes a namespace and ends every process still running in it (a process
 * would otherwise keep the namespace, its links and addresses alive after the
 * name is gone). Succeeds when the namespace is already gone.
 */
export async function deleteNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  const { stdout } = await exec(["ip", "netns", "pids", name], { allowFailure: true });
  for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await exec(["ip", "netns", "delete", name], { allowFailure: true });
}

/** Runs argv inside namespace `name` (ip netns exec also gives it its own /sys). */
export function execIn(name: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
  return exec(["ip", "netns", "exec", name, ...argv], opts);
}

/** Lists namespace names that start with `prefix`. */
export async function listNetns(prefix: string): Promise<string[]> {
  const { stdout } = await exec(["ip", "-j", "netns", "list"], { allowFailure: true });
  if (!stdout.trim()) return [];
  const entries = JSON.parse(stdout) as { name: string }[];
  return entries.map((e) => e.name).filter((n) => n.startsWith(prefix));
}
