import { spawn } from "node:child_process";

// `nft monitor new elements` inside one namespace, every line stamped with
// Date.now() as it arrives: when an element reached the kernel, seen from
// outside the process that put it there. stdbuf makes nft's stdout line
// buffered (a pipe would otherwise be block buffered and hold lines back).
// The stamp is late by the pipe and this process's event loop, a few ms on
// an idle machine and more on a loaded one; it is never early.

export interface NftMonitor {
  lines: { t: number; line: string }[];
  /** Ends the monitor (its own process only) and resolves once it has exited. */
  stop(): Promise<void>;
}

export async function startNftMonitor(netns: string): Promise<NftMonitor> {
  const child = spawn("ip", ["netns", "exec", netns, "stdbuf", "-oL", "nft", "monitor", "new", "elements"], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: { t: number; line: string }[] = [];
  let partial = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    const t = Date.now();
    const parts = (partial + d).split("\n");
    partial = parts.pop()!;
    for (const line of parts) if (line) lines.push({ t, line });
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<void>((r) => child.on("close", () => r()));
  // nft has no "listening" line: give it a moment to open its netlink socket, and fail early if it could not start.
  await new Promise((r) => setTimeout(r, 300));
  if (child.exitCode !== null) throw new Error(`nft monitor in ${netns} exited at once: ${stderr.trim()}`);
  return {
    lines,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      if (stderr.trim()) console.error(`nft monitor in ${netns}: ${stderr.trim()}`);
    },
  };
}
