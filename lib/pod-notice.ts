import { TwillError } from "./errors.ts";
import { formatIp, parseIp } from "./net/cidr.ts";

// The handshake between the CNI plugin and the node daemon, over the unix
// socket named in the node file: one JSON line from the plugin, one JSON line
// back, then the daemon closes. "add": this pod on this node now has these
// addresses; the daemon answers once the pod's NetworkPolicy (and, fail
// closed, its `ready` element) is in the kernel. "del": forget them.
// "failed": an ADD that failed, for the daemon's metrics (and the node's
// Events, e.g. IPAM exhaustion); the plugin sends it and does not wait.
// "add" and "del" carry `elapsedMs`, the plugin's time from its start to the
// notice, and "del" the code of a DEL step that failed: the daemon's CNI
// latency and error metrics ride on notices the plugin sends anyway.
// Both sides use this module, so the wire format has one owner.

export const NOTICE_VERSION = 1;
/** Longer lines are refused unread: a notice is a few hundred bytes. */
export const NOTICE_MAX_BYTES = 4096;

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface AddNotice {
  version: 1;
  op: "add";
  pod: PodRef;
  containerId: string;
  ifname: string;
  /** Bare addresses (no prefix length), one per family at most. */
  ips: string[];
  /** How long the plugin waits for the reply (ms): the daemon answers before that. */
  waitMs?: number;
  /** Milliseconds since the plugin process started, when it sent this notice. */
  elapsedMs?: number;
}

export interface DelNotice {
  version: 1;
  op: "del";
  pod: PodRef;
  containerId: string;
  /** The attachment being deleted; absent (older plugins): the container's. */
  ifname?: string;
  elapsedMs?: number;
  /** The error code of a DEL step that failed (the runtime retries DEL). */
  code?: string;
}

export interface FailedNotice {
  version: 1;
  op: "failed";
  command: "ADD";
  pod: PodRef;
  containerId: string;
  elapsedMs?: number;
  code: string;
}

export type Notice = AddNotice | DelNotice | FailedNotice;

/** Why the daemon did not program: a code for machines, a sentence for people. */
export type NoticeErrorCode = "NOTICE_INVALID" | "UNKNOWN_POD" | "POD_NOT_ON_NODE" | "STATUS_DIFFERS" | "ADDRESS_OUTSIDE_POD_CIDR" | "NOT_PROGRAMMED" | "POLICY_OFF";

export type NoticeReply = { ok: true; programmed: true; ms: number } | { ok: true; forgotten: true } | { ok: true; noted: true } | { ok: false; code: NoticeErrorCode; message: string };

// DNS-1123 subdomain / label shapes, as the apiserver validates them.
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const UID = /^[A-Za-z0-9-]{1,64}$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$/;
const IFNAME_BAD = /[/:\s]/;
/** Error codes as the plugin's TwillErrors spell them (a code is a metric label: no free text). */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,47}$/;

function invalid(message: string): TwillError {
  return new TwillError("NOTICE_INVALID", message);
}

function podRef(v: unknown): PodRef {
  const p = v as Partial<PodRef> | null;
  if (typeof p !== "object" || p === null) throw invalid("notice lacks pod {namespace, name, uid}");
  if (typeof p.namespace !== "string" || !NAMESPACE.test(p.namespace)) throw invalid(`pod namespace ${JSON.stringify(p.namespace)} is not a valid namespace name`);
  if (typeof p.name !== "string" || !NAME.test(p.name)) throw invalid(`pod name ${JSON.stringify(p.name)} is not a valid pod name`);
  if (typeof p.uid !== "string" || !UID.test(p.uid)) throw invalid(`pod uid ${JSON.stringify(p.uid)} is not a valid uid`);
  return { namespace: p.namespace, name: p.name, uid: p.uid };
}

/** Canonical text of an address (so "10.0.0.01"-like spellings never reach nft). */
function address(v: unknown): string {
  if (typeof v !== "string") throw invalid(`address ${JSON.stringify(v)} is not a string`);
  // ipaddr.js also takes legacy IPv4 spellings ("10.1", octal): only dotted quads here.
  if (!v.includes(":") && !/^\d{1,3}(\.\d{1,3}){3}$/.test(v)) throw invalid(`address ${JSON.stringify(v)} is not a dotted-quad IPv4 address`);
  try {
    const { family, value } = parseIp(v);
    return formatIp(family, value);
  } catch {
    throw invalid(`address ${JSON.stringify(v)} is not an IPv4 or IPv6 address`);
  }
}

/** Parses one request line from the plugin; throws TwillError NOTICE_INVALID with a sentence. */
export function decodeNotice(line: string): Notice {
  if (Buffer.byteLength(line) > NOTICE_MAX_BYTES) throw invalid(`notice is longer than ${NOTICE_MAX_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw invalid("notice is not one line of JSON");
  }
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw invalid("notice must be a JSON object");
  if (o.version !== NOTICE_VERSION) throw invalid(`notice version ${JSON.stringify(o.version)} is not ${NOTICE_VERSION}; the plugin and the daemon are from different releases`);
  const pod = podRef(o.pod);
  if (typeof o.containerId !== "string" || !CONTAINER_ID.test(o.containerId)) throw invalid("notice containerId may hold only letters, digits, _ . -");
  const ifnameOk = (v: unknown): v is string => typeof v === "string" && v !== "" && v.length <= 15 && !IFNAME_BAD.test(v);
  const elapsedMs = o.elapsedMs;
  if (elapsedMs !== undefined && (typeof elapsedMs !== "number" || !(elapsedMs >= 0 && elapsedMs <= 3_600_000))) throw invalid("notice elapsedMs must be a number of milliseconds between 0 and 3600000");
  const timing = elapsedMs !== undefined ? { elapsedMs } : {};
  const code = o.code;
  if (code !== undefined && (typeof code !== "string" || !ERROR_CODE.test(code))) throw invalid("notice code must be an upper-case error code such as IPAM_EXHAUSTED");
  if (o.op === "del") {
    if (o.ifname !== undefined && !ifnameOk(o.ifname)) throw invalid("notice ifname is not a valid interface name");
    return { version: 1, op: "del", pod, containerId: o.containerId, ...(o.ifname !== undefined ? { ifname: o.ifname } : {}), ...timing, ...(code ? { code } : {}) };
  }
  if (o.op === "failed") {
    if (o.command !== "ADD") throw invalid('a "failed" notice is for command "ADD"');
    if (!code) throw invalid('a "failed" notice needs the error code');
    return { version: 1, op: "failed", command: "ADD", pod, containerId: o.containerId, ...timing, code };
  }
  if (o.op !== "add") throw invalid(`notice op ${JSON.stringify(o.op)} is not "add", "del" or "failed"`);
  if (!ifnameOk(o.ifname)) throw invalid("notice ifname is not a valid interface name");
  if (!Array.isArray(o.ips) || o.ips.length === 0 || o.ips.length > 2) throw invalid("notice ips must list one or two addresses");
  const ips = o.ips.map(address);
  if (new Set(ips.map((ip) => ip.includes(":"))).size !== ips.length) throw invalid("notice ips may hold at most one address per family");
  if (o.waitMs !== undefined && (typeof o.waitMs !== "number" || !Number.isInteger(o.waitMs) || o.waitMs < 1 || o.waitMs > 60_000)) throw invalid("notice waitMs must be an integer between 1 and 60000");
  return { version: 1, op: "add", pod, containerId: o.containerId, ifname: o.ifname, ips, ...(o.waitMs !== undefined ? { waitMs: o.waitMs } : {}), ...timing };
}

export function encodeNotice(n: Notice): string {
  return JSON.stringify(n) + "\n";
}

export function encodeReply(r: NoticeReply): string {
  return JSON.stringify(r) + "\n";
}

/** Parses the daemon's reply; anything else reads as a NOT_PROGRAMMED failure (the plugin only logs it). */
export function decodeReply(line: string): NoticeReply {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { ok: false, code: "NOT_PROGRAMMED", message: "the daemon's reply is not JSON" };
  }
  if (o?.ok === true && o.programmed === true) return { ok: true, programmed: true, ms: typeof o.ms === "number" ? o.ms : 0 };
  if (o?.ok === true && o.forgotten === true) return { ok: true, forgotten: true };
  if (o?.ok === true && o.noted === true) return { ok: true, noted: true };
  if (o?.ok === false && typeof o.code === "string" && typeof o.message === "string") return { ok: false, code: o.code as NoticeErrorCode, message: o.message };
  return { ok: false, code: "NOT_PROGRAMMED", message: "the daemon's reply has an unknown shape" };
}
