import { spawn, type ChildProcess } from "node:child_process";
import { netnsPath } from "../../lib/kernel/netns.ts";

// Counts what is written to a node's kernel while it runs: `ip monitor` for
// Twill's routes (protocol 211), permanent neighbour/FDB entries and its VXLAN
// device, and `nft monitor` for every nft change in the namespace. Kernel-made
// events (ARP state changes of ordinary neighbours) are not writes and are
// left out. Used to prove "re-listing / an outage rewrites nothing".

export class KernelWriteMonitor {
  readonly lines: string[] = [];
  private readonly procs: ChildProcess[] = [];
  private readonly ns: string;

  constructor(ns: string) {
    this.ns = ns;
  }

  /** Resolves once both monitors run (their first output is not awaited: they print only on change). */
  async start(): Promise<this> {
    for (const argv of [["ip", "-o", "monitor", "label", "route", "neigh", "link"], ["nft", "monitor"]]) {
      const p = spawn("nsenter", [`--net=${netnsPath(this.ns)}`, ...argv], { stdio: ["ignore", "pipe", "ignore"] });
      let buf = "";
      p.stdout!.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        const parts = buf.split("\n");
        buf = parts.pop()!;
        for (const l of parts) if (countsAsWrite(l)) this.lines.push(l);
      });
      this.procs.push(p);
    }
    // Give both a moment to subscribe before the caller acts.
    await new Promise((r) => setTimeout(r, 300));
    return this;
  }

  stop(): string[] {
    for (const p of this.procs) p.kill("SIGTERM");
    return this.lines;
  }
}

export function countsAsWrite(line: string): boolean {
  const l = line.trim();
  if (!l || l.startsWith("#")) return false;
  if (l.startsWith("[ROUTE]")) return /proto 211\b/.test(l);
  if (l.startsWith("[NEIGH]")) return /permanent/i.test(l) && /twill\.vxlan/.test(l);
  if (l.startsWith("[LINK]")) return /twill\.vxlan/.test(l);
  if (l.startsWith("[")) return false;
  return true; // nft monitor: every rule, set, element or table change
}
