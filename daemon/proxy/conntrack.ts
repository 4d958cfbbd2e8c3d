import { exec } from "../../lib/kernel/exec.ts";
import type { Logger } from "../../lib/log.ts";

// UDP has no connection to end: a conntrack entry keeps sending a client's
// datagrams to the endpoint it was first DNATed to, even after that endpoint
// is gone, until the entry times out. So, as kube-proxy does, the proxy
// deletes the entries of a removed UDP endpoint, and when a UDP port that was
// rejecting (no endpoints) gets one, the entries its rejected datagrams left
// (unNATed, they would keep missing the new endpoint).
// Through the conntrack tool (conntrack-tools, in the image): it speaks
// ctnetlink in the daemon's own network namespace. A missing tool is logged
// once with its code; nothing else depends on it.

export type Flush =
  | { kind: "endpoint"; vip: string; endpoint: string }
  | { kind: "nodeport-endpoint"; nodePort: number; endpoint: string }
  | { kind: "vip"; vip: string }
  | { kind: "nodeport"; nodePort: number };

export function flushArgs(f: Flush): string[] {
  const base = ["-D", "-p", "udp"];
  switch (f.kind) {
    case "endpoint":
      return [...base, "--orig-dst", f.vip, "--reply-src", f.endpoint];
    case "nodeport-endpoint":
      return [...base, "--orig-port-dst", String(f.nodePort), "--reply-src", f.endpoint];
    case "vip":
      return [...base, "--orig-dst", f.vip];
    case "nodeport":
      return [...base, "--orig-port-dst", String(f.nodePort)];
  }
}

export class ConntrackFlusher {
  private readonly log: Logger;
  private readonly binary: string;
  private missing = false;

  constructor(log: Logger, binary = "conntrack") {
    this.log = log;
    this.binary = binary;
  }

  /** Deletes the matching entries; "0 flow entries" (exit 1) is no error. Returns how many were deleted. */
  async flush(list: Flush[]): Promise<number> {
    let deleted = 0;
    for (const f of list) {
      if (this.missing) return deleted;
      try {
        const r = await exec([this.binary, ...flushArgs(f)], { allowFailure: true });
        const m = /(\d+) flow entries have been deleted/.exec(r.stderr);
        if (m) deleted += Number(m[1]);
        else if (r.code !== 0) this.log.warn({ code: "CONNTRACK_FLUSH", details: r.stderr.trim().slice(0, 500) }, "deleting UDP conntrack entries failed");
      } catch (err) {
        this.missing = true;
        this.log.error({ code: "CONNTRACK_MISSING", details: String(err) }, "the conntrack tool is not installed: removed UDP endpoints keep their clients until the entries time out; install conntrack-tools");
      }
    }
    return deleted;
  }
}
