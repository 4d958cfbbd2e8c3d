import { daemonSocketPath } from "../../lib/node-file.ts";
import { decodeReply, encodeNotice, NOTICE_MAX_BYTES, type Notice, type NoticeReply } from "../../lib/pod-notice.ts";
import { podIdentity } from "../env.ts";
import { readNodeFileQuietly, type Invocation } from "./context.ts";

// The plugin's half of the handshake (lib/pod-notice.ts). ADD tells the
// daemon the pod's addresses and waits, at most daemonTimeoutMs, for "the
// pod's policy is in the kernel", so a pod kubelet reports Ready is never
// still dropped by fail-closed. Nothing here fails the command: no daemon, no
// socket, a timeout or a refusal are logged as a warning and ADD succeeds
// (fail-closed keeps the pod isolated until the daemon has caught up: safe,
// only late).

export type NotifyOutcome = NoticeReply | { ok: false; code: "NO_DAEMON" | "TIMEOUT"; message: string } | undefined;

/** One request line, one reply line; undefined reply when the connection or the time runs out. */
export function exchange(socket: string, notice: Notice, timeoutMs: number): Promise<NotifyOutcome> {
  return new Promise((resolve) => {
    let buf = "";
    let done = false;
    const finish = (r: NotifyOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, code: "TIMEOUT", message: `the daemon did not answer within ${timeoutMs} ms` }), timeoutMs);
    // Loaded here, not at start: only ADD and DEL with a daemon to ask need it (~2 ms of CPU to load).
    const conn = process.getBuiltinModule("node:net").createConnection({ path: socket });
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(encodeNotice(notice)));
    conn.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl >= 0) finish(decodeReply(buf.slice(0, nl)));
      else if (buf.length > NOTICE_MAX_BYTES) finish(decodeReply(""));
    });
    conn.on("error", (err: NodeJS.ErrnoException) => finish({ ok: false, code: "NO_DAEMON", message: `cannot reach the daemon at ${socket}: ${err.code ?? err.message}` }));
    conn.on("close", () => finish({ ok: false, code: "NO_DAEMON", message: "the daemon closed the connection without answering" }));
  });
}

/** The socket to notify, or undefined when there is nothing to ask (no pod identity, handshake off, no socket advertised). */
function target(inv: Invocation): { socket: string; pod: NonNullable<ReturnType<typeof podIdentity>> } | undefined {
  if (inv.conf.daemonTimeoutMs === 0) return undefined;
  const pod = podIdentity(inv.env.args);
  if (!pod) return undefined;
  const node = readNodeFileQuietly(inv.conf.nodeFile);
  const socket = node && daemonSocketPath(node, inv.conf.nodeFile);
  return socket ? { socket, pod } : undefined;
}

/**
 * After the pod is attached: waits until the daemon programmed its policy,
 * or the timeout. Never throws. Undefined when there was nobody to ask; else
 * how long it waited and whether the daemon said "programmed" (a warning
 * with the reason is logged when not).
 */
export async function notifyAdd(inv: Invocation, ips: string[]): Promise<{ waitedMs: number; programmed: boolean } | undefined> {
  const t = target(inv);
  if (!t) return undefined;
  const t0 = performance.now();
  const r = await exchange(t.socket, { version: 1, op: "add", pod: t.pod, containerId: inv.env.containerId, ifname: inv.env.ifname, ips, waitMs: inv.conf.daemonTimeoutMs, elapsedMs: +t0.toFixed(2) }, inv.conf.daemonTimeoutMs).catch(
    (err: unknown): NotifyOutcome => ({ ok: false, code: "NO_DAEMON", message: String(err) }),
  );
  const waitedMs = +(performance.now() - t0).toFixed(2);
  if (r?.ok) return { waitedMs, programmed: true };
  inv.log.warn(
    { cmd: "ADD", containerId: inv.env.containerId, pod: `${t.pod.namespace}/${t.pod.name}`, waitedMs, code: r?.code ?? "NO_DAEMON", reason: r?.message },
    "the pod's NetworkPolicy may not be in the kernel yet: fail-closed keeps it isolated until the daemon programs it (check the daemon's log and its socket)",
  );
  return { waitedMs, programmed: false };
}

/** An error's code as a notice carries it (TwillError codes; anything else is CNI_FAILED). */
const codeOf = (err: unknown): string => {
  const c = (err as { code?: unknown } | undefined)?.code;
  return typeof c === "string" && /^[A-Z][A-Z0-9_]{0,47}$/.test(c) ? c : "CNI_FAILED";
};

/** On DEL: the daemon forgets the addresses ADD told it. Short wait, never throws, quiet on no daemon (DEL also runs on nodes being torn down). */
export async function notifyDel(inv: Invocation, failed?: unknown): Promise<void> {
  const t = target(inv);
  if (!t) return;
  const notice = { version: 1, op: "del", pod: t.pod, containerId: inv.env.containerId, ifname: inv.env.ifname, elapsedMs: +performance.now().toFixed(2), ...(failed ? { code: codeOf(failed) } : {}) } as const;
  const r = await exchange(t.socket, notice, Math.min(500, inv.conf.daemonTimeoutMs)).catch(() => undefined);
  if (r && !r.ok && r.code !== "NO_DAEMON") inv.log.warn({ cmd: "DEL", containerId: inv.env.containerId, code: r.code, reason: r.message }, "the daemon did not take the pod's DEL notice; it forgets the pod when the apiserver does");
}

/**
 * A failed ADD, for the daemon's metrics and Events: written and not waited
 * for (at most 100 ms to hand the line over), never throws. The result the
 * runtime reads is the error itself.
 */
export async function notifyAddFailed(inv: Invocation, err: unknown): Promise<void> {
  const t = target(inv);
  if (!t) return;
  await exchange(t.socket, { version: 1, op: "failed", command: "ADD", pod: t.pod, containerId: inv.env.containerId, elapsedMs: +performance.now().toFixed(2), code: codeOf(err) }, 100).catch(() => undefined);
}
