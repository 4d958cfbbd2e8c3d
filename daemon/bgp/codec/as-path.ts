import { AS_TRANS } from "./types.ts";
import { SegType, type AsSegment } from "./update-types.ts";

// AS_PATH segments (RFC 4271 §4.3, §5.1.2) and the RFC 6793 rules for
// carrying 4-octet AS numbers through 2-octet speakers.

/** Parses segments with `size`-octet AS numbers; undefined when malformed per RFC 7606 §7.2. */
export function parseSegments(b: Uint8Array, size: 2 | 4): AsSegment[] | undefined {
  const segs: AsSegment[] = [];
  let o = 0;
  while (o < b.length) {
    // A lone trailing octet cannot hold even an empty segment header.
    if (o + 2 > b.length) return undefined;
    const type = b[o]!;
    const count = b[o + 1]!;
    if (type < SegType.AS_SET || type > SegType.CONFED_SET || count === 0) return undefined;
    if (o + 2 + count * size > b.length) return undefined;
    const asns: number[] = [];
    for (let i = 0; i < count; i++) {
      const p = o + 2 + i * size;
      asns.push(size === 2 ? (b[p]! << 8) | b[p + 1]! : ((b[p]! << 24) >>> 0) + (b[p + 1]! << 16) + (b[p + 2]! << 8) + b[p + 3]!);
    }
    segs.push({ type, asns });
    o += 2 + count * size;
  }
  return segs;
}

export function encodeSegments(segs: readonly AsSegment[], size: 2 | 4): number[] {
  const out: number[] = [];
  for (const s of segs) {
    // A segment holds at most 255 AS numbers; longer runs become several (empty ones are not sent: malformed).
    for (let i = 0; i < s.asns.length; i += 255) {
      const part = s.asns.slice(i, i + 255);
      out.push(s.type, part.length);
      for (const a of part) {
        const v = size === 2 && a > 0xffff ? AS_TRANS : a;
        if (size === 2) out.push((v >> 8) & 0xff, v & 0xff);
        else out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
      }
    }
  }
  return out;
}

const isConfed = (s: AsSegment) => s.type === SegType.CONFED_SEQUENCE || s.type === SegType.CONFED_SET;

/** Path length for best-path selection: an AS_SET counts one, confederation segments none (RFC 4271 §9.1.2.2, RFC 5065 §5.3). */
export function pathLength(segs: readonly AsSegment[] | undefined): number {
  let n = 0;
  for (const s of segs ?? []) {
    if (s.type === SegType.AS_SEQUENCE) n += s.asns.length;
    else if (s.type === SegType.AS_SET) n += 1;
  }
  return n;
}

/** True when some AS number needs four octets (then a 2-octet session also carries AS4_PATH). */
export function needsAs4(segs: readonly AsSegment[]): boolean {
  return segs.some((s) => s.asns.some((a) => a > 0xffff));
}

/** The AS4_PATH to send beside a 2-octet AS_PATH: the path without confederation segments (RFC 6793 §4.2.2). */
export function as4PathOf(segs: readonly AsSegment[]): AsSegment[] {
  return segs.filter((s) => !isConfed(s));
}

/**
 * RFC 6793 §4.2.3: the real path from a 2-octet AS_PATH and an AS4_PATH. The
 * leading AS numbers that AS4_PATH lacks (added by 2-octet speakers on the
 * way) come from AS_PATH; an AS4_PATH longer than AS_PATH is ignored.
 */
export function mergeAs4Path(asPath: readonly AsSegment[], as4Path: readonly AsSegment[]): AsSegment[] {
  let lead = pathLength(asPath) - pathLength(as4Path);
  if (lead < 0) return asPath.map((s) => ({ type: s.type, asns: [...s.asns] }));
  const out: AsSegment[] = [];
  for (const s of asPath) {
    if (lead === 0) break;
    if (isConfed(s)) out.push({ type: s.type, asns: [...s.asns] });
    else if (s.type === SegType.AS_SET) {
      out.push({ type: s.type, asns: [...s.asns] });
      lead -= 1;
    } else {
      const take = s.asns.slice(0, lead);
      out.push({ type: s.type, asns: take });
      lead -= take.length;
    }
  }
  for (const s of as4Path) {
    const last = out[out.length - 1];
    if (last && last.type === SegType.AS_SEQUENCE && s.type === SegType.AS_SEQUENCE) last.asns.push(...s.asns);
    else out.push({ type: s.type, asns: [...s.asns] });
  }
  return out;
}
