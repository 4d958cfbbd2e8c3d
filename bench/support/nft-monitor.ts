import { spawn } from "node:child_process";

// `nft monitor new elements` inside one namespace, every line stamped as it
// leaves nft: when an element reached the kernel, seen from outside the
// process that put it there. stdbuf makes nft's stdout line buffered (a pipe
// would otherwise be block buffered and hold lines back). A small perl
// filter beside nft stamps each line (CLOCK_REALTIME, µs) the moment it reads
// it, so the stamp is late by nft's print and one pipe only, not by this
// process's event loop: that was up to several ms late under bench:pods'
// load, enough to put a stamp after a CNI ADD that returned only once the
// element was in (docs/cni.md). Never early. Lines without a stamp (perl
// missing) fall back to Date.now() on arrival. Both run SCHED_FIFO (chrt):
// on a loaded 2-core machine an ordinary process waits for the CPU for tens
// of ms after the kernel queued its event (measured: stamps up to 18 ms after
// an ADD that had confirmed the element), a real-time one is woken at once.
// They print a few lines per pod, so the priority costs the machine nothing.

export interface NftMonitor {
  lines: { t: number; line: string }[];
  /** Ends the monitor (its own process only) and resolves once it has exited. */
  stop(): Promise<void>;
}

/** `events`: what nft monitor prints (default new elements; "" for every event and each commit's "new generation" line). */
export async function startNftMonitor(netns: string, events = "new elements"): Promise<NftMonitor> {
  const stamp = `chrt -f 50 perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } printf("%.3f %s", time() * 1000, $_)'`;
  const child = spawn("ip", ["netns", "exec", netns, "sh", "-c", `chrt -f 50 stdbuf -oL nft monitor ${events} | ${stamp}`], {
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: stop() ends the shell, nft and perl together, by this group's id.
    detached: true,
  });
  const lines: { t: number; line: string }[] = [];
  let partial = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    const t = Date.now();
    const parts = (partial + d).split("\n");
    partial = parts.pop()!;
    for (const line of parts) {
      const m = /^(\d+\.\d+) (.*)$/.exec(line);
      if (m) lines.push({ t: Number(m[1]), line: m[2]! });
      else if (line) lines.push({ t, line });
    }
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<void>((r) => child.on("close", () => r()));
  // nft has no "listening" line: give it a moment to open its netlink socket, and fail early if it could not start.
  await new Promise((r) => setTimeout(r, 300));
  if (child.exitCode !== null) throw new Error(`nft monitor in ${netns} exited at once: ${stderr.trim()}`);
  return {
    lines,
    stop: async () => {
      if (child.exitCode === null && child.pid) process.kill(-child.pid, "SIGTERM");
      await exited;
      if (stderr.trim()) console.error(`nft monitor in ${netns}: ${stderr.trim()}`);
    },
  };
}
