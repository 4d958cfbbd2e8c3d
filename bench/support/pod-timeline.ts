import { percentile } from "./stats.ts";

// The timeline of one pod, from the sources a cluster already has: the
// apiserver's watch (created, scheduled, IP reported, Ready), containerd's
// log (RunPodSandbox called and returned), the CNI plugin's log (its ADD), and
// what `nft monitor` saw enter Twill's policy table. Every mark is epoch
// milliseconds on this machine's clock (CLOCK_REALTIME: Date.now(), and the
// logs' RFC 3339 times), so marks from different processes compare.
// Everything here is pure: the bench reads the files and streams.

/** The marks of the timeline in order, each with the stage that ends at it. */
export const MARKS = ["created", "scheduled", "sandbox", "cniStart", "cniEnd", "policy", "ready"] as const;
export type Mark = (typeof MARKS)[number];

export type PodTimeline = Record<Mark, number> & {
  /** containerd's "returns sandbox id": the sandbox (network included) is up. */
  sandboxReady: number;
  /** The first watch event with status.podIP: the daemon can only program a pod the apiserver reports an address for. */
  ipReported: number;
};

/** RFC 3339 with any number of fractional digits (containerd logs nanoseconds) → epoch ms, sub-ms kept. */
export function parseLogTime(s: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return Number.NaN;
  return Date.parse(`${m[1]}${m[3]}`) + (m[2] ? Number(`0.${m[2]}`) * 1000 : 0);
}

export interface SandboxTimes {
  /** The CRI call arrived (containerd's first "RunPodSandbox for" line of the pod). */
  start: number;
  /** It returned (the first "returns sandbox id" line: failed attempts print no such line). */
  ready?: number;
  id?: string;
}

/**
 * RunPodSandbox per pod (`namespace/name`) from containerd 1.6's text log:
 *   time="…" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:churn-1,Uid:…,Namespace:default,Attempt:0,}"
 *   time="…" level=info msg="RunPodSandbox for &PodSandboxMetadata{…} returns sandbox id \"7c2f…\""
 */
export function sandboxTimes(log: string): Map<string, SandboxTimes> {
  const out = new Map<string, SandboxTimes>();
  for (const line of log.split("\n")) {
    const i = line.indexOf('msg="RunPodSandbox for &PodSandboxMetadata{');
    if (i < 0) continue;
    const time = /^time="([^"]+)"/.exec(line);
    const meta = /\{Name:([^,]+),Uid:[^,]*,Namespace:([^,]+),/.exec(line.slice(i));
    if (!time || !meta) continue;
    const t = parseLogTime(time[1]!);
    const key = `${meta[2]}/${meta[1]}`;
    const returned = /returns sandbox id \\"([0-9a-f]+)\\"/.exec(line);
    const s = out.get(key);
    if (returned) {
      if (s && s.ready === undefined) Object.assign(s, { ready: t, id: returned[1] });
    } else if (!s && !line.includes(" failed")) {
      out.set(key, { start: t });
    }
  }
  return out;
}

export interface CniAdd {
  /** The plugin's process start: the line's time − processMs. */
  start: number;
  /** The line's time: written just before the result goes back to the runtime (after the daemon handshake). */
  end: number;
  processMs: number;
  /** Of processMs, the wait for the daemon's "programmed" (0 when the plugin did not ask). */
  daemonMs: number;
  ipamMs: number;
  kernelMs: number;
  ips: string[];
}

/** The plugin's ADD lines (cni/log.ts: JSON with `time`, ms resolution), by container (sandbox) id. */
export function cniAdds(log: string): Map<string, CniAdd> {
  const out = new Map<string, CniAdd>();
  for (const line of log.split("\n")) {
    if (!line.includes('"cmd":"ADD"')) continue;
    const e = JSON.parse(line) as { time?: string; containerId?: string; processMs?: number; ipamMs?: number; kernelMs?: number; daemonMs?: number; ips?: string[] };
    if (e.processMs === undefined || !e.time || !e.containerId) continue;
    const end = Date.parse(e.time);
    out.set(e.containerId, { start: end - e.processMs, end, processMs: e.processMs, ipamMs: e.ipamMs ?? 0, kernelMs: e.kernelMs ?? 0, daemonMs: e.daemonMs ?? 0, ips: e.ips ?? [] });
  }
  return out;
}

/** Twill's fail-closed set (daemon/policy/compile.ts): an address passes only once its pod's policy is in the kernel. */
const READY_SETS = new Set(["ready", "ready6"]);

/**
 * The first time each address entered the `ready` set of `inet twill-policy`,
 * from `nft monitor` lines stamped on arrival, e.g.
 *   add element inet twill-policy ready { 10.244.1.7 }
 *   add element inet twill-policy ready { 10.244.1.7, 10.244.1.8 }
 */
export function policyTimes(lines: readonly { t: number; line: string }[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const { t, line } of lines) {
    const m = /^add element inet twill-policy (\S+) \{ (.*) \}\s*$/.exec(line.trim());
    if (!m || !READY_SETS.has(m[1]!)) continue;
    for (const ip of m[2]!.split(",").map((e) => e.trim())) if (ip && !out.has(ip)) out.set(ip, t);
  }
  return out;
}

export interface Quantiles {
  p50: number;
  p99: number;
}

const q = (xs: number[]): Quantiles => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) });

export interface TimelineSummary {
  /** Each stage: from the previous mark to this one (may be negative where two processes race). */
  stages: ({ to: Mark; from: Mark } & Quantiles)[];
  /** Each mark measured from `created`. */
  marks: ({ mark: Mark | "sandboxReady" | "ipReported" } & Quantiles)[];
  /** The daemon's own part of the policy stage: apiserver reports the IP → address in the kernel. */
  daemonPolicy: Quantiles;
}

export function summarise(pods: readonly PodTimeline[]): TimelineSummary {
  const stages = MARKS.slice(1).map((to, k) => ({ to, from: MARKS[k]!, ...q(pods.map((p) => p[to] - p[MARKS[k]!])) }));
  const marks = [...MARKS.slice(1), "sandboxReady" as const, "ipReported" as const].map((mark) => ({ mark, ...q(pods.map((p) => p[mark] - p.created)) }));
  return { stages, marks, daemonPolicy: q(pods.map((p) => p.policy - p.ipReported)) };
}
