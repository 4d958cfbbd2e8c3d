import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { TwillError } from "../../lib/errors.ts";

// One long-lived `nft -i` process. A fresh `nft -f` pays for loading its view
// of the whole ruleset on every run (30–45 ms with ~100 sets and 180,000
// elements here); a persistent session keeps that view and revalidates it
// against the ruleset generation, so a small diff costs 3–10 ms (measured,
// docs/policy.md). Each transaction is sent as ONE input line (commands
// joined by ";"), which nft parses and commits as one batch: all or nothing.
// nft -i prints nothing on success, so every line is followed by a sentinel
// command with a fixed answer on stdout; an "Error:" on stderr before it means
// the transaction was rejected. nft writes a line's error before it runs the
// next line, so when the sentinel's answer arrives the error is already in the
// stderr pipe: the answer is judged one event-loop turn later, once stderr has
// been read. No shell: the DaemonSet's image has none.

const SENTINEL = "describe ct mark";
const SENTINEL_ANSWER = "(packet mark)";

export class NftSession {
  private readonly netns: string | undefined;
  private proc: ChildProcessWithoutNullStreams | undefined;
  private buffer = "";
  private pending: { resolve: (out: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;

  private readonly what: string;

  constructor(netns?: string, what = "NetworkPolicy") {
    this.netns = netns;
    this.what = what;
  }

  private errors = "";

  private start(): ChildProcessWithoutNullStreams {
    const argv = this.netns ? ["ip", "netns", "exec", this.netns, "nft", "-i"] : ["nft", "-i"];
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    p.stdout.setEncoding("utf8").on("data", (d: string) => this.onData(d));
    p.stderr.setEncoding("utf8").on("data", (d: string) => (this.errors += d));
    p.stdin.on("error", () => {});
    const gone = (why: string) => {
      if (this.proc === p) this.proc = undefined;
      this.fail(new TwillError("NFT_SESSION", why));
    };
    p.on("error", (err) => gone(`the nft session could not run: ${err.message}`));
    p.on("exit", () => gone("the nft session ended"));
    this.buffer = "";
    this.errors = "";
    return p;
  }

  private onData(d: string): void {
    this.buffer += d;
    const i = this.buffer.indexOf(SENTINEL_ANSWER);
    if (i < 0 || !this.pending) return;
    const end = this.buffer.indexOf("\n", i);
    if (end < 0) return;
    const out = this.buffer.slice(0, end + 1);
    this.buffer = this.buffer.slice(end + 1);
    const p = this.pending;
    this.pending = undefined;
    clearTimeout(p.timer);
    setImmediate(() => {
      const errors = this.errors;
      this.errors = "";
      p.resolve(errors + out);
    });
  }

  private fail(err: Error): void {
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  /** Commits `transaction` (newline-separated nft commands) atomically; throws with nft's message if rejected. */
  run(transaction: string, timeoutMs = 10_000): Promise<void> {
    if (this.pending) return Promise.reject(new TwillError("NFT_SESSION", "one nft transaction at a time"));
    const line = transaction.split("\n").map((l) => l.trim()).filter(Boolean).join("; ");
    this.proc ??= this.start();
    const proc = this.proc;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new TwillError("NFT_SESSION", `the nft session did not answer within ${timeoutMs} ms`));
        proc.kill("SIGKILL");
      }, timeoutMs);
      this.pending = { resolve, reject, timer };
      proc.stdin.write(`${line}\n${SENTINEL}\n`);
    }).then((out) => {
      const before = out.slice(0, out.lastIndexOf("ct expression"));
      if (/Error:/.test(before)) throw new TwillError("NFT_APPLY", `nft rejected the ${this.what} transaction; the previous table stays in force`, before.trim().slice(0, 2000));
    });
  }

  close(): void {
    this.proc?.stdin.end();
    this.proc = undefined;
  }
}
