import { Watch, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";

// One kind of object from the apiserver: list (paged), then watch from the
// list's resourceVersion with bookmarks, re-listing only when the server says
// the version is too old (410). The cache keeps a slim copy of each object
// (only what the daemon reads) and survives apiserver outages: until a new
// list replaces it, the daemon keeps working from the last view.

export interface ListPage<T> {
  items: T[];
  metadata?: { _continue?: string; resourceVersion?: string };
}

interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ResourceWatch<T> {
  list(): T[];
  onChange(fn: () => void): void;
  synced(): boolean;
  /** Moves on every change of the cache: consumers skip work when it has not moved. */
  revision(): number;
  stop(): void;
}

export interface ResourceWatchOptions<T> {
  kc: KubeConfig;
  log: Logger;
  /** API path, e.g. /api/v1/nodes. */
  path: string;
  what: string;
  listPage: (cont: string | undefined) => Promise<ListPage<T>>;
  slim: (obj: T) => T;
  onError: (err: unknown) => void;
  retryMs?: number;
  /** Extra watch query parameters (a fieldSelector naming the one object RBAC lets the daemon watch). */
  params?: Record<string, string>;
}

const keyOf = (o: Meta) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

export function watchResource<T extends Meta>(o: ResourceWatchOptions<T>): ResourceWatch<T> {
  const watcher = new Watch(o.kc);
  const cache = new Map<string, T>();
  const listeners: (() => void)[] = [];
  let resourceVersion = "";
  let hasSynced = false;
  let stopped = false;
  let abort: AbortController | undefined;
  let rev = 0;
  const changed = () => {
    rev++;
    listeners.forEach((fn) => fn());
  };

  // Paged, so that a large cluster's full objects are never all in memory at once.
  const relist = async () => {
    const fresh = new Map<string, T>();
    let next: string | undefined;
    let version = "";
    do {
      const page = await o.listPage(next);
      for (const item of page.items) fresh.set(keyOf(item), o.slim(item));
      next = page.metadata?._continue || undefined;
      version = page.metadata?.resourceVersion ?? version;
    } while (next);
    // A re-list (after a 410, an apiserver or etcd restart) mostly finds what the cache
    // already holds: those objects keep their identity, and consumers are woken only
    // when something differs, so an unchanged cluster costs no reconcile and no kernel write.
    let differs = !hasSynced || fresh.size !== cache.size;
    for (const [k, v] of fresh) {
      const prev = cache.get(k);
      if (prev && JSON.stringify(prev) === JSON.stringify(v)) fresh.set(k, prev);
      else differs = true;
    }
    cache.clear();
    for (const [k, v] of fresh) cache.set(k, v);
    resourceVersion = version;
    if (hasSynced) o.log.info({ objects: fresh.size, changed: differs }, `${o.what} watch re-listed`);
    hasSynced = true;
    if (differs) changed();
  };

  const watchOnce = () =>
    new Promise<void>((resolve, reject) => {
      watcher
        .watch(
          o.path,
          { ...o.params, resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: T & { code?: number; message?: string }) => {
            if (type === "ERROR") {
              if (obj.code === 410) resourceVersion = "";
              reject(new Error(`watch error ${obj.code ?? ""}: ${obj.message ?? ""}`));
              return;
            }
            resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
            if (type === "BOOKMARK") return;
            const key = keyOf(obj);
            if (type === "DELETED") cache.delete(key);
            else {
              const next = o.slim(obj);
              const prev = cache.get(key);
              // A change the slim copy does not carry (status heartbeats, conditions,
              // taints, managed fields) is nothing to act on: no reconcile, and the
              // cached object keeps its identity (memos keyed on it stay valid).
              // At 5,000 nodes such updates kept the reconcile loop busy and
              // pushed a joining node's route behind them.
              if (prev && JSON.stringify(prev) === JSON.stringify(next)) return;
              cache.set(key, next);
            }
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
        // 410 as the HTTP status of the watch request itself (not an ERROR event): the version is gone too.
        if ((err as { statusCode?: number })?.statusCode === 410) resourceVersion = "";
        o.onError(err);
        o.log.warn({ err: String((err as Error)?.message ?? err) }, `${o.what} watch failed; keeping the last view and retrying`);
        await new Promise((r) => setTimeout(r, o.retryMs ?? 2000));
      }
    }
  };
  void loop();
  return {
    list: () => [...cache.values()],
    onChange: (fn) => listeners.push(fn),
    synced: () => hasSynced,
    revision: () => rev,
    stop: () => {
      stopped = true;
      abort?.abort();
    },
  };
}
