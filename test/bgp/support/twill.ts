import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { SpeakerConfig } from "../../../daemon/bgp/speaker/config.ts";
import { waitFor } from "./lan.ts";

// Twill's speaker as a real process inside a namespace (daemon/bgp/cli.ts),
// driven over its JSON-lines stdin/stdout.

export interface TwillRoute {
  prefix: string;
  nextHop: string;
  peer: string;
  stale: boolean;
}

export class TwillProc {
  readonly child: ChildProcess;
  readonly events: Record<string, unknown>[] = [];
  private routesReply: ((r: TwillRoute[]) => void) | undefined;
  stderr = "";

  constructor(ns: string, dir: string, name: string, cfg: SpeakerConfig & { announce?: string[] }) {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(cfg));
    const node = process.execPath;
    this.child = spawn("ip", ["netns", "exec", ns, node, "daemon/bgp/cli.ts", file], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, TWILL_LOG_LEVEL: "debug" } });
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const ev = JSON.parse(line) as Record<string, unknown>;
      if (ev.event === "routes") this.routesReply?.(ev.routes as TwillRoute[]);
      else this.events.push(ev);
    });
  }

  ready(): Promise<unknown> {
    return waitFor("twill speaker ready", () => (this.events.some((e) => e.event === "ready") ? true : this.child.exitCode !== null ? Promise.reject(new Error(this.stderr)) : undefined));
  }

  send(cmd: object): void {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  routes(): Promise<TwillRoute[]> {
    return new Promise((resolve) => {
      this.routesReply = resolve;
      this.send({ cmd: "routes" });
    });
  }

  async route(prefix: string): Promise<TwillRoute | undefined> {
    return (await this.routes()).find((r) => r.prefix === prefix);
  }

  established(peer: string): boolean {
    const last = this.events.filter((e) => e.event === "peer" && e.peer === peer).at(-1);
    return last?.state === "established";
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((r) => {
      this.child.once("exit", () => r());
      this.child.kill(signal);
    });
  }
}
