import { spawn, type ChildProcess } from "node:child_process";
import { decodeMessage } from "../../../daemon/bgp/codec/decode.ts";
import type { Message } from "../../../daemon/bgp/codec/types.ts";
import { waitFor } from "./lan.ts";

// A BGP peer that sends exactly the bytes a test gives it: a TCP connection
// made by socat inside the peer's namespace, bytes in on stdin, out on stdout.

export class RawPeer {
  private readonly child: ChildProcess;
  private buf = Buffer.alloc(0);
  readonly received: Message[] = [];
  /** Set when Twill's bytes could not be framed (would be a Twill bug). */
  garbage = false;
  closed = false;

  constructor(ns: string, host: string, port = 179) {
    this.child = spawn("ip", ["netns", "exec", ns, "socat", "-t", "1", "-", `TCP:${host}:${port}`], { stdio: ["pipe", "pipe", "ignore"] });
    this.child.stdout!.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const r = decodeMessage(this.buf);
        if (r.ok === "incomplete") break;
        if (r.ok === false) {
          this.garbage = true;
          break;
        }
        this.received.push(r.message);
        this.buf = this.buf.subarray(r.length);
      }
    });
    this.child.stdout!.on("end", () => (this.closed = true));
    this.child.stdin!.on("error", () => {});
  }

  send(...messages: Uint8Array[]): void {
    for (const m of messages) this.child.stdin!.write(m);
  }

  /** Waits for the n-th message of a type (1-based). */
  async nth(type: Message["type"], n = 1): Promise<Message> {
    return waitFor(`${type} #${n} from Twill`, () => this.received.filter((m) => m.type === type)[n - 1], 20_000);
  }

  notifications(): Message[] {
    return this.received.filter((m) => m.type === "notification");
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await new Promise<void>((r) => {
      this.child.once("exit", () => r());
      this.child.kill("SIGKILL");
    });
  }
}
