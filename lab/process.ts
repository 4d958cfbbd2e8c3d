import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { netnsPath } from "../lib/kernel/netns.ts";
import { TwillError } from "../lib/errors.ts";

// Long-running lab processes (etcd, apiserver, daemons) run inside their
// host's namespace, in their own process group, logging to a file. Teardown
// kills every process of a namespace (lib/kernel/netns.ts deleteNetns), so
// nothing outlives the lab even if the process that started it was killed.

export interface LabProcess {
  name: string;
  pid: number;
  log: string;
  child: ChildProcess;
  exited: () => boolean;
}

export function startIn(ns: string, name: string, argv: string[], log: string, env: NodeJS.ProcessEnv = process.env): LabProcess {
  const fd = openSync(log, "a");
  // nsenter keeps the real program's pid (no wrapper in between).
  const child = spawn("nsenter", [`--net=${netnsPath(ns)}`, ...argv], { detached: true, stdio: ["ignore", fd, fd], env });
  closeSync(fd);
  let done = false;
  child.on("exit", () => (done = true));
  child.unref();
  if (!child.pid) throw new TwillError("LAB_START", `could not start ${name}`);
  return { name, pid: child.pid, log, child, exited: () => done };
}

export function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export function stop(p: LabProcess): void {
  try {
    process.kill(-p.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A process's resident memory and open file descriptors (the soak's and reliability tests' leak figures). */
export function processStats(pid: number): { rssKiB: number; fds: number } {
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return { rssKiB: Number(rss?.[1] ?? NaN), fds: readdirSync(`/proc/${pid}/fd`).length };
}
