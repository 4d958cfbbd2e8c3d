import { TwillError } from "../../lib/errors.ts";
import { cidrContains, formatCidr, formatIp, lastAddress, parseCidr, parseIp, type Cidr, type Family } from "../../lib/net/cidr.ts";

// host-local's range model: `ranges` is a list of range sets; a pod gets one
// address from each set (so one set per IP family). Within a set, ranges are
// tried in order.

export interface Range {
  subnet: Cidr;
  start: bigint;
  end: bigint;
  gateway: bigint | undefined;
}

export type RangeSet = Range[];

export interface RangeSpec {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

function addrIn(subnet: Cidr, text: string, what: string, rangeText: string): bigint {
  const { family, value } = parseIp(text);
  if (!cidrContains(subnet, family, value)) {
    throw new TwillError("IPAM_RANGE_INVALID", `${what} ${text} is outside subnet ${rangeText}`);
  }
  return value;
}

export function parseRange(spec: RangeSpec): Range {
  const subnet = parseCidr(spec.subnet);
  const text = formatCidr(subnet);
  const last = lastAddress(subnet);
  const size = last - subnet.network + 1n;
  // The network address (and IPv4's broadcast) is never handed out; the
  // daemon may use the network address for the node's own tunnel endpoint.
  const firstUsable = size > 2n ? subnet.network + 1n : subnet.network;
  const lastUsable = subnet.family === 4 && size > 2n ? last - 1n : last;
  const start = spec.rangeStart ? addrIn(subnet, spec.rangeStart, "rangeStart", text) : firstUsable;
  const end = spec.rangeEnd ? addrIn(subnet, spec.rangeEnd, "rangeEnd", text) : lastUsable;
  if (start > end) throw new TwillError("IPAM_RANGE_INVALID", `rangeStart is after rangeEnd in ${text}`);
  const gateway = spec.gateway ? addrIn(subnet, spec.gateway, "gateway", text) : undefined;
  return { subnet, start: start < firstUsable ? firstUsable : start, end: end > lastUsable ? lastUsable : end, gateway };
}

export function describeRange(r: Range): string {
  const f = r.subnet.family;
  return `${formatCidr(r.subnet)} (${formatIp(f, r.start)}-${formatIp(f, r.end)})`;
}

export function rangeSetFamily(set: RangeSet): Family {
  const first = set[0];
  if (!first) throw new TwillError("IPAM_RANGE_INVALID", "a range set is empty");
  return first.subnet.family;
}

/** Number of assignable addresses in a set (for exhaustion messages and metrics). */
export function rangeSetSize(set: RangeSet): bigint {
  return set.reduce((n, r) => n + (r.end - r.start + 1n) - (r.gateway !== undefined && r.gateway >= r.start && r.gateway <= r.end ? 1n : 0n), 0n);
}

/**
 * Candidate addresses of a set in allocation order: starting after `after`
 * (the last address handed out, so freed addresses are not reused at once),
 * wrapping around, each address at most once.
 */
export function* candidates(set: RangeSet, after: bigint | undefined): Generator<bigint> {
  let startRange = 0;
  let startAt: bigint | undefined;
  if (after !== undefined) {
    const i = set.findIndex((r) => after >= r.start && after <= r.end);
    if (i >= 0) {
      startRange = i;
      startAt = after + 1n;
    }
  }
  for (let k = 0; k <= set.length; k++) {
    const idx = (startRange + k) % set.length;
    const r = set[idx]!;
    const wrapped = k === set.length;
    const from = k === 0 && startAt !== undefined ? startAt : r.start;
    const to = wrapped && startAt !== undefined ? startAt - 1n : r.end;
    if (wrapped && startAt === undefined) break;
    for (let a = from; a <= to; a++) {
      if (a !== r.gateway) yield a;
    }
  }
}
