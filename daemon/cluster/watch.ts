import { CoreV1Api, makeInformer, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";

// Nodes, watched through the apiserver (list, then watch). The informer does
// not restart itself after an error, so this does, after a pause. Its cache
// survives an apiserver outage: until a new list replaces it, the daemon keeps
// reconciling the last view, and the dataplane stays as it is.

export interface NodeWatch {
  list(): readonly V1Node[];
  /** Called on every change (and after each re-list). */
  onChange(fn: () => void): void;
  synced(): boolean;
  stop(): void;
}

export function watchNodes(kc: KubeConfig, log: Logger, onError: (err: unknown) => void, retryMs = 2000): NodeWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer(kc, "/api/v1/nodes", () => core.listNode());
  const listeners: (() => void)[] = [];
  let hasSynced = false;
  let stopped = false;
  let failedSinceStart = false;
  let retry: NodeJS.Timeout | undefined;
  const changed = () => listeners.forEach((fn) => fn());
  for (const ev of ["add", "update", "delete"] as const) informer.on(ev, changed);

  const start = () => {
    retry = undefined;
    if (stopped) return;
    failedSinceStart = false;
    informer.start().then(
      () => {
        if (failedSinceStart) return;
        hasSynced = true;
        changed();
      },
      (err: unknown) => fail(err),
    );
  };
  const fail = (err: unknown) => {
    failedSinceStart = true;
    onError(err);
    log.warn({ err: String((err as Error)?.message ?? err) }, "node watch failed; keeping the last cluster view and retrying");
    if (!retry && !stopped) retry = setTimeout(start, retryMs);
  };
  informer.on("error", fail);
  start();
  return {
    list: () => informer.list(),
    onChange: (fn) => listeners.push(fn),
    synced: () => hasSynced,
    stop: () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      void informer.stop();
    },
  };
}
