import { CoreV1Api, Watch, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";

// Nodes through the apiserver: list, then watch from the list's
// resourceVersion (with bookmarks), re-listing only when the server says the
// version is too old (410). The cache keeps a slim copy of each Node — only
// the fields the daemon reads — because real kubelet-written Node objects
// (image lists, conditions, managed fields) are large and a cluster has
// thousands. The cache survives an apiserver outage: until a new list
// replaces it, the daemon keeps reconciling the last view, so the dataplane
// stays as it is.

export interface NodeWatch {
  list(): readonly V1Node[];
  /** Called on every change (and after each re-list). */
  onChange(fn: () => void): void;
  synced(): boolean;
  stop(): void;
}

const PREFIX = "twill.dev/";

/** What cluster/view.ts reads of a Node, and nothing else. */
export function slimNode(n: V1Node): V1Node {
  const annotations = Object.fromEntries(Object.entries(n.metadata?.annotations ?? {}).filter(([k]) => k.startsWith(PREFIX)));
  return {
    metadata: { name: n.metadata?.name ?? "", annotations },
    spec: { ...(n.spec?.podCIDR ? { podCIDR: n.spec.podCIDR } : {}), ...(n.spec?.podCIDRs ? { podCIDRs: n.spec.podCIDRs } : {}) },
    status: { addresses: (n.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })) },
  };
}

export function watchNodes(kc: KubeConfig, log: Logger, onError: (err: unknown) => void, retryMs = 2000): NodeWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const watcher = new Watch(kc);
  const cache = new Map<string, V1Node>();
  const listeners: (() => void)[] = [];
  let resourceVersion = "";
  let hasSynced = false;
  let stopped = false;
  let abort: AbortController | undefined;
  const changed = () => listeners.forEach((fn) => fn());

  // Paged, so that a large cluster's full Node objects are never all in memory at once.
  const relist = async () => {
    const fresh = new Map<string, V1Node>();
    let next: string | undefined;
    let version = "";
    do {
      const page = await core.listNode({ limit: 500, ...(next ? { _continue: next } : {}) });
      for (const n of page.items) fresh.set(n.metadata?.name ?? "", slimNode(n));
      next = page.metadata?._continue || undefined;
      version = page.metadata?.resourceVersion ?? version;
    } while (next);
    cache.clear();
    for (const [k, v] of fresh) cache.set(k, v);
    resourceVersion = version;
    hasSynced = true;
    changed();
  };

  const watchOnce = () =>
    new Promise<void>((resolve, reject) => {
      watcher
        .watch(
          "/api/v1/nodes",
          { resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: V1Node & { code?: number; message?: string }) => {
            if (type === "ERROR") {
              // 410 Gone: our version is too old; list again.
              if (obj.code === 410) resourceVersion = "";
              reject(new Error(`watch error ${obj.code ?? ""}: ${obj.message ?? ""}`));
              return;
            }
            resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
            if (type === "BOOKMARK") return;
            const name = obj.metadata?.name ?? "";
            if (type === "DELETED") cache.delete(name);
            else cache.set(name, slimNode(obj));
            changed();
          },
          (err: unknown) => (err ? reject(err) : resolve()),
        )
        .then((ctrl) => {
          abort = ctrl;
          if (stopped) ctrl.abort();
        }, reject);
    });

  const loop = async () => {
    while (!stopped) {
      try {
        if (!resourceVersion) await relist();
        await watchOnce(); // returns when the server ends the watch; continue from resourceVersion
      } catch (err) {
        if (stopped) return;
        onError(err);
        log.warn({ err: String((err as Error)?.message ?? err) }, "node watch failed; keeping the last cluster view and retrying");
        await new Promise((r) => setTimeout(r, retryMs));
      }
    }
  };
  void loop();
  return {
    list: () => [...cache.values()],
    onChange: (fn) => listeners.push(fn),
    synced: () => hasSynced,
    stop: () => {
      stopped = true;
      abort?.abort();
    },
  };
}
