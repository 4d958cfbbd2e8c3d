import type { Notice, NoticeReply } from "../../lib/pod-notice.ts";
import type { Metrics } from "./metrics.ts";

// The CNI plugin's latency and errors, from the notices it sends the daemon
// anyway (lib/pod-notice.ts): the plugin is a short-lived process nobody can
// scrape, and it must not spend its ADD talking to a metrics system. ADD's
// time is the plugin's time until its notice plus the daemon's until it
// answered (what the plugin then does — log one line, print the result —
// is not counted, well under a millisecond); DEL's is the plugin's time until
// its notice, which comes after its work. A failed ADD sends a "failed"
// notice without waiting for the answer.

/** Codes seen as label values; past this many distinct ones a node counts the rest under OTHER. */
const MAX_CODES = 32;

export interface CniObserver {
  /** Wraps the daemon's handling of one notice, timing and counting it. */
  handle(n: Notice, next: (n: Notice) => Promise<NoticeReply>): Promise<NoticeReply>;
}

export function cniObserver(metrics: Metrics, onFailure: (n: Notice & { code?: string }) => void = () => {}): CniObserver {
  const codes = new Set<string>();
  const label = (code: string) => {
    if (codes.has(code) || codes.size < MAX_CODES) return codes.add(code), code;
    return "OTHER";
  };
  return {
    async handle(n, next) {
      const t0 = performance.now();
      const reply = await next(n);
      if (n.op === "failed") {
        if (n.elapsedMs !== undefined) metrics.cniDuration.observe({ command: "ADD" }, n.elapsedMs / 1000);
        metrics.cniErrors.inc({ command: "ADD", code: label(n.code) });
        onFailure(n);
      } else if (n.op === "add" && n.elapsedMs !== undefined) {
        metrics.cniDuration.observe({ command: "ADD" }, (n.elapsedMs + performance.now() - t0) / 1000);
      } else if (n.op === "del") {
        if (n.elapsedMs !== undefined) metrics.cniDuration.observe({ command: "DEL" }, n.elapsedMs / 1000);
        if (n.code) {
          metrics.cniErrors.inc({ command: "DEL", code: label(n.code) });
          onFailure(n);
        }
      }
      return reply;
    },
  };
}
