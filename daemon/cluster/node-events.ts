import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";

// A minimal Event recorder for this node's Node object, rate-limited so a
// condition that persists (a broken ConfigMap every poll) posts one Event per
// window, not one per check. Events show in `kubectl describe node` and
// `kubectl get events`. Kept separate and small so a general recorder can
// replace it.

export type EventType = "Normal" | "Warning";

export interface NodeEventRecorder {
  /** Posts unless the same reason and message went out within the window; never throws. */
  record(type: EventType, reason: string, message: string): void;
}

const WINDOW_MS = 10 * 60_000;

export function nodeEventRecorder(kc: KubeConfig, nodeName: string, log: Logger, windowMs = WINDOW_MS): NodeEventRecorder {
  const core = kc.makeApiClient(CoreV1Api);
  const sent = new Map<string, number>();
  return {
    record(type, reason, message) {
      const key = `${reason}\n${message}`;
      const now = Date.now();
      if (now - (sent.get(key) ?? -Infinity) < windowMs) return;
      sent.set(key, now);
      const at = new Date(now);
      // Nodes are cluster-scoped: their Events live in "default", and the kubelet names the Node's uid as its name.
      void core
        .createNamespacedEvent({
          namespace: "default",
          body: {
            metadata: { generateName: `${nodeName}.twill.`, namespace: "default" },
            involvedObject: { apiVersion: "v1", kind: "Node", name: nodeName, uid: nodeName },
            type,
            reason,
            message,
            source: { component: "twill-daemon", host: nodeName },
            reportingComponent: "twill.dev/daemon",
            reportingInstance: nodeName,
            firstTimestamp: at,
            lastTimestamp: at,
            count: 1,
          },
        })
        .catch((err: unknown) => log.warn({ code: "EVENT_NOT_POSTED", reason, err: String((err as Error)?.message ?? err) }, "could not post an Event on this node (the condition is still in the log and metrics)"));
    },
  };
}
