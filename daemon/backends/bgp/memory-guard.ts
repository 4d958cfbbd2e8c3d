import { getHeapStatistics } from "node:v8";

// How many learned prefixes this process can hold: the node-wide limit
// behind every peer's own (a full table from a peer without one, or several
// peers near theirs, must stop at a NOTIFICATION, never at the heap limit or
// the container's memory limit). V8's heap limit is the bound: the DaemonSet
// caps it (--max-old-space-size in manifests/twill.yaml) below the
// container's memory limit, so a heap within its limit keeps the process
// within the container's.

/**
 * Heap bytes per learned prefix at the worst moment of a feed: the RIB's
 * entry (~80 B, measured at 100k) plus what a reconcile pass allocates for
 * it while it diffs the whole table against the kernel (desired route,
 * dumped route, both diff maps), with room for V8 to collect late.
 */
export const PEAK_HEAP_BYTES_PER_PREFIX = 400;
/** Heap kept for everything else the daemon does (informers, policy, services). */
const HEADROOM_BYTES = 48 << 20;
const MIN_BUDGET = 10_000;

export function learnedPrefixBudget(heap = getHeapStatistics()): number {
  const free = heap.heap_size_limit - heap.used_heap_size - HEADROOM_BYTES;
  return Math.max(MIN_BUDGET, Math.floor(free / PEAK_HEAP_BYTES_PER_PREFIX));
}
