import { TwillError } from "../../lib/errors.ts";

/** One write the kernel refused (or that could not be sent): the entry as an `ip` command, and why. */
export interface Failed {
  what: string;
  why: string;
}

/**
 * One KERNEL_WRITE error for a step's refused writes, naming the first (the
 * rest in details); nothing when none failed. Netlink applies every message
 * on its own, so the others of the step are in the kernel already.
 */
export function throwIfFailed(failed: Failed[], attempted: number, noun: string): void {
  if (failed.length === 0) return;
  const [first] = failed;
  throw new TwillError(
    "KERNEL_WRITE",
    `${first!.what} failed: ${first!.why} (${failed.length} of ${attempted} ${noun} failed; the rest were applied, the failed ones are retried on the next reconcile)`,
    failed.slice(0, 20).map((f) => `${f.what}: ${f.why}`).join("\n"),
  );
}
