// The node daemon's operator API, as twillctl and the daemon both see it: HTTP
// with JSON bodies, on a unix socket beside the node file (read-only calls and,
// only there, the mutating ones) and, read-only, on the daemon's health port.
// One module owns the paths and the shapes, so the two sides cannot drift.

/** The socket's file name beside the node file: /run/twill/ctl.sock on a node. */
export const CTL_SOCKET_NAME = "ctl.sock";
export const DEFAULT_CTL_SOCKET = "/run/twill/ctl.sock";
export const CTL_PREFIX = "/ctl/v1";

/** Requests bigger than this are refused unread: every request is a few hundred bytes. */
export const CTL_MAX_REQUEST_BYTES = 16 * 1024;

/** The nflog group the policy table's drop log rules send to (one per node network namespace). */
export const DROP_LOG_GROUP = 2718;

export type Proto = "tcp" | "udp" | "sctp";

export interface LeftOutNode {
  node: string;
  code: string;
  reason: string;
}

export interface BgpSession {
  peer: string;
  state: string;
  /** Seconds in the current state (established: the uptime). */
  sinceSeconds: number;
  prefixesIn: number;
  prefixesOut: number;
}

export interface StatusReply {
  node: string;
  version: string;
  backend: string;
  ready: boolean;
  live: boolean;
  /** ISO time of the last successful reconcile, or null before the first. */
  lastSync: string | null;
  /** The last reconcile error, "" when the last pass succeeded. */
  lastError: string;
  mtu: number | null;
  podCIDRs: string[];
  counts: { routes: number; neighbours: number; fdb: number; isolatedPods: number | null; policies: number | null; services: number | null };
  /** What the kernel holds of Twill's (read for this reply), to compare with counts. */
  kernel: { routes: number; neighbours: number; fdb: number };
  policy: "on" | "off";
  bgp: BgpSession[];
  leftOut: LeftOutNode[];
}

export interface IpamAllocation {
  ip: string;
  network: string;
  containerId: string;
  ifname: string;
  /** namespace/name of the pod holding the address, "" when none does. */
  pod: string;
  /** ISO time the record was written (the CNI ADD). */
  allocated: string;
  leak: boolean;
  /** Why this is a leak candidate. */
  reason?: string;
}

export interface IpamReply {
  node: string;
  cidrs: { cidr: string; size: number; used: number }[];
  allocations: IpamAllocation[];
  leaks: number;
}

export interface IpamGcReply {
  node: string;
  apply: boolean;
  /** Addresses that are (dry run) or were (apply) released. */
  released: IpamAllocation[];
  errors: string[];
}

export type DiffState = "ok" | "missing" | "extra" | "differs";

export interface DiffRow {
  /** The peer node the entry is for ("" when none is known). */
  peer: string;
  kind: string;
  key: string;
  want: string;
  have: string;
  state: DiffState;
}

export interface DiffReply {
  node: string;
  rows: DiffRow[];
  differences: number;
}

export interface ExplainRequest {
  src: string;
  dst: string;
  port: number;
  proto: Proto;
}

export interface RuleRef {
  policy: string;
  /** Index of the rule within the policy's ingress or egress list. */
  rule: number;
  text: string;
}

export interface KernelMatch {
  /** The node whose kernel was read. */
  node: string;
  chain: string;
  /** The rule that decides, as nft prints it. */
  rule: string;
  /** The set element that contains the packet, when an accept rule decided. */
  element: string | null;
  packets: number;
  bytes: number;
  /** The kernel agrees with the compiler's verdict. */
  agrees: boolean;
}

export interface DirectionVerdict {
  direction: "egress" | "ingress";
  /** namespace/name of the pod whose side this is, or null for an address. */
  pod: string | null;
  node: string | null;
  verdict: "allow" | "deny";
  isolated: boolean;
  /** Policies that select the pod in this direction. */
  isolatedBy: string[];
  /** Rules that admit the connection (empty: denied, or not isolated). */
  allowedBy: RuleRef[];
  /** The kernel check, from the node that holds the pod; null when this daemon is not that node. */
  kernel: KernelMatch | null;
  summary: string;
}

export interface ExplainReply {
  src: string;
  dst: string;
  srcIp: string;
  dstIp: string;
  port: number;
  proto: Proto;
  verdict: "allow" | "deny";
  directions: DirectionVerdict[];
}

export interface TraceRequest extends ExplainRequest {
  /** "probe": trace and send the probe from the source pod (this node); "observe": trace only, for `seconds`. */
  mode: "probe" | "observe";
  seconds?: number;
}

export interface TraceStep {
  node: string;
  table: string;
  chain: string;
  /** The rule as nft prints it, or "policy" for a chain's policy. */
  rule: string;
  verdict: string;
}

export interface TraceReply {
  node: string;
  /** The probe connected (probe mode). */
  connected?: boolean;
  /** Packets of the connection traced here (a dropped SYN is sent again); steps are the first's. */
  packets: number;
  steps: TraceStep[];
  /** The step that ended the packet's way through the node: its drop, or the last accept. */
  decision: TraceStep | null;
}

export interface DropCount {
  pod: string;
  ip: string;
  direction: "ingress" | "egress";
  packets: number;
  bytes: number;
}

export interface DropEvent {
  time: string;
  node: string;
  direction: "ingress" | "egress";
  /** The pod whose policy dropped it (namespace/name), or its address when unknown. */
  pod: string;
  src: string;
  dst: string;
  proto: string;
  port: number | null;
  /** Policies isolating the pod in that direction (the side that dropped). */
  isolatedBy: string[];
}

export interface DropsReply {
  node: string;
  totals: DropCount[];
  recent: DropEvent[];
  /** Events the nflog reader saw since start, and log messages the rate limit left out is unknowable: only those seen. */
  seen: number;
}

export interface ApiError {
  code: string;
  message: string;
}

/** twillctl's exit codes (docs/twillctl.md). */
export const EXIT = {
  OK: 0,
  /** The command ran and found something wrong: a denied verdict, differences, leaks, a node not ready. */
  FINDINGS: 1,
  USAGE: 2,
  /** The daemon's socket or port could not be reached. */
  UNREACHABLE: 3,
  /** The daemon answered with an error. */
  DAEMON_ERROR: 4,
  /** The apiserver (kubeconfig) could not be used or refused. */
  APISERVER: 5,
  /** The named pod or node does not exist. */
  NOT_FOUND: 6,
  /** Permission denied on the socket, or a mutating call over a read-only transport. */
  FORBIDDEN: 7,
} as const;

/** Parses `80/tcp` (protocol defaults to tcp). */
export function parsePortProto(text: string): { port: number; proto: Proto } | undefined {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { port, proto: (m[2]?.toLowerCase() ?? "tcp") as Proto };
}
