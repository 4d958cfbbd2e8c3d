import type { Logger } from "../../lib/log.ts";

/** Why a node is not connected: a machine-readable code and a sentence for the operator. */
export interface LeftOut {
  code: string;
  reason: string;
}

/**
 * Remembers which nodes the last pass left out, so each one is logged when it
 * drops out (or its reason changes) and when it comes back, not every pass.
 */
export class LeftOutLog {
  private last = new Map<string, LeftOut>();

  update(now: Map<string, LeftOut>, log: Logger, onLeftOut?: (node: string, why: LeftOut) => void): void {
    for (const [node, why] of now) {
      const before = this.last.get(node);
      if (before?.code !== why.code || before.reason !== why.reason) {
        log.warn({ code: why.code, node }, why.reason);
        onLeftOut?.(node, why);
      }
    }
    for (const node of this.last.keys()) if (!now.has(node)) log.info({ node }, "node no longer left out");
    this.last = now;
  }
}
