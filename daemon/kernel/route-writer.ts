import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { TwillError } from "../../lib/errors.ts";

// One long-lived `ip -force -batch -` process for route writes. A fresh
// `ip -batch` per reconcile pays a process start, and the caller has to wait
// for the whole batch before the next one can even be computed; a persistent
// process takes lines as they come, so writes overlap with reception.
// `ip` says nothing on success and, with -force, reports each failed line on
// stderr as its message followed by "Command failed -:N" (N counts lines
// since the process started) and carries on. Each write ends with a sentinel
// line that always fails the same way (showing a device that cannot exist):
// its "Command failed" marks the write as done, and every failure between the
// write's first line and its sentinel belongs to that write. Only stderr is
// read: it is unbuffered, so nothing waits in a pipe.

const SENTINEL = "link show dev twill-sentinel";

export interface LineError {
  line: string;
  error: string;
}

interface Pending {
  first: number;
  sentinel: number;
  lines: string[];
  errors: LineError[];
  resolve: (errors: LineError[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class RouteWriter {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private lineNo = 0;
  private buffer = "";
  private message: string[] = [];
  private readonly queue: Pending[] = [];
  private readonly netns: string | undefined;

  /** `netns`: write into that named namespace (tests); by default the daemon's own. */
  constructor(netns?: string) {
    this.netns = netns;
  }

  private start(): ChildProcessWithoutNullStreams {
    const p = spawn("ip", [...(this.netns ? ["-n", this.netns] : []), "-force", "-batch", "-"], { stdio: ["pipe", "pipe", "pipe"] });
    this.lineNo = 0;
    this.buffer = "";
    this.message = [];
    p.stdout.resume();
    p.stderr.setEncoding("utf8").on("data", (d: string) => this.onStderr(d));
    p.stdin.on("error", () => {});
    p.on("error", (err) => this.failAll(new TwillError("ROUTE_WRITER", `could not run ip for route writes (${err.message}): is iproute2 installed?`)));
    p.on("exit", (code) => {
      if (this.proc === p) this.proc = undefined;
      this.failAll(new TwillError("ROUTE_WRITER", `the ip route writer exited (code ${code}); the next reconcile starts a new one and re-reads the kernel`));
    });
    return p;
  }

  private onStderr(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const text = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      const m = /^Command failed -:(\d+)$/.exec(text);
      if (!m) {
        this.message.push(text);
        continue;
      }
      const n = Number(m[1]);
      const error = this.message.join("\n");
      this.message = [];
      const p = this.queue.find((q) => n >= q.first && n <= q.sentinel);
      if (!p) continue;
      if (n < p.sentinel) {
        p.errors.push({ line: p.lines[n - p.first] ?? "", error });
        continue;
      }
      // Writes finish in order: this one is at the head of the queue.
      this.queue.splice(this.queue.indexOf(p), 1);
      clearTimeout(p.timer);
      p.resolve(p.errors);
      if (this.queue.length === 0) this.setRef(false);
    }
  }

  private failAll(err: Error): void {
    for (const p of this.queue.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  /** An idle writer must not keep a process alive that has nothing else to do. */
  private setRef(on: boolean): void {
    const p = this.proc;
    if (!p) return;
    for (const h of [p, p.stdin, p.stdout, p.stderr] as { ref?: () => void; unref?: () => void }[]) (on ? h.ref : h.unref)?.call(h);
  }

  /**
   * Sends `lines` (ip batch commands) and resolves, once ip has run them all,
   * with the lines that failed; lines are applied one by one, not atomically.
   */
  write(lines: string[]): Promise<LineError[]> {
    if (lines.length === 0) return Promise.resolve([]);
    this.proc ??= this.start();
    const proc = this.proc;
    const first = this.lineNo + 1;
    this.lineNo += lines.length + 1;
    // Generous: ~5 s per 100,000 routes were measured on a loaded machine.
    const timeoutMs = 30_000 + lines.length;
    return new Promise<LineError[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.failAll(new TwillError("ROUTE_WRITER", `ip did not finish ${lines.length} route writes within ${timeoutMs} ms; it was restarted`));
        proc.kill("SIGKILL");
      }, timeoutMs);
      this.queue.push({ first, sentinel: this.lineNo, lines, errors: [], resolve, reject, timer });
      this.setRef(true);
      proc.stdin.write(`${lines.join("\n")}\n${SENTINEL}\n`);
    });
  }

  close(): void {
    this.proc?.stdin.end();
    this.proc = undefined;
  }
}
