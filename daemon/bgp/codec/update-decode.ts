import { AS_TRANS, Err, notification, type Notification } from "./types.ts";
import { mergeAs4Path, parseSegments } from "./as-path.ts";
import { decodePrefixes, formatAddress, type Family } from "./prefix.ts";
import {
  AttrCode, AttrFlag, UpdateSub, type AsSegment, type Aggregator, type MpReach, type MpUnreach, type PathAttrs,
  type RawAttr, type UpdateContext, type UpdateResult,
} from "./update-types.ts";

// UPDATE decoding with RFC 7606 error handling. Each problem is graded as
// attribute-discard < treat-as-withdraw < session-reset and the strongest
// wins (RFC 7606 §3 (h)). Nothing here throws.

const u16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) >>> 0) + (b[o + 1]! << 16) + (b[o + 2]! << 8) + b[o + 3]!;

const O = AttrFlag.OPTIONAL;
const T = AttrFlag.TRANSITIVE;
/** The Optional and Transitive bits each known attribute must carry (RFC 4271 §5, RFC 4456, RFC 4760, RFC 6793). */
const EXPECTED_FLAGS: Record<number, number> = {
  [AttrCode.ORIGIN]: T,
  [AttrCode.AS_PATH]: T,
  [AttrCode.NEXT_HOP]: T,
  [AttrCode.MED]: O,
  [AttrCode.LOCAL_PREF]: T,
  [AttrCode.ATOMIC_AGGREGATE]: T,
  [AttrCode.AGGREGATOR]: O | T,
  [AttrCode.COMMUNITIES]: O | T,
  [AttrCode.ORIGINATOR_ID]: O,
  [AttrCode.CLUSTER_LIST]: O,
  [AttrCode.MP_REACH_NLRI]: O,
  [AttrCode.MP_UNREACH_NLRI]: O,
  [AttrCode.AS4_PATH]: O | T,
  [AttrCode.AS4_AGGREGATOR]: O | T,
};

const UNICAST = 1;
const isFamily = (afi: number, safi: number): afi is Family => (afi === 1 || afi === 2) && safi === UNICAST;

/** The severity ladder and what the strongest problem so far was. */
class Verdict {
  withdraw: Notification | undefined;
  reset: Notification | undefined;
  discarded: number[] = [];
  treatAsWithdraw(sub: number, data?: Uint8Array): void {
    this.withdraw ??= notification(Err.UPDATE, sub, data);
  }
  sessionReset(sub: number, data?: Uint8Array): void {
    this.reset ??= notification(Err.UPDATE, sub, data);
  }
  discard(code: number): void {
    this.discarded.push(code);
  }
}

export function decodeUpdate(body: Uint8Array, ctx: UpdateContext): UpdateResult {
  const reset = (sub: number): UpdateResult => ({ action: "reset", error: notification(Err.UPDATE, sub) });
  // RFC 4271 §6.3: length fields that overrun the message are a Malformed Attribute List.
  if (body.length < 4) return reset(UpdateSub.MALFORMED_ATTRIBUTE_LIST);
  const wlen = u16(body, 0);
  if (2 + wlen + 2 > body.length) return reset(UpdateSub.MALFORMED_ATTRIBUTE_LIST);
  const alen = u16(body, 2 + wlen);
  const attrStart = 4 + wlen;
  if (attrStart + alen > body.length) return reset(UpdateSub.MALFORMED_ATTRIBUTE_LIST);
  // Unparseable prefixes leave nothing to withdraw reliably: session reset (RFC 7606 §5.3).
  const withdrawn = decodePrefixes(body.subarray(2, 2 + wlen), 1);
  const nlri = decodePrefixes(body.subarray(attrStart + alen), 1);
  if (!withdrawn || !nlri) return reset(UpdateSub.INVALID_NETWORK_FIELD);

  const v = new Verdict();
  const attrs: PathAttrs = {};
  let as4Path: AsSegment[] | undefined;
  let as4Aggregator: Aggregator | undefined;
  const seen = new Set<number>();
  const end = attrStart + alen;
  let o = attrStart;
  while (o < end) {
    const flags = body[o]!;
    const hdr = flags & AttrFlag.EXTENDED ? 4 : 3;
    // RFC 7606 §4: a truncated attribute header or an attribute overrunning the
    // Total Attribute Length is treat-as-withdraw; the NLRI is still found from that length.
    if (end - o < hdr) {
      v.treatAsWithdraw(UpdateSub.MALFORMED_ATTRIBUTE_LIST);
      break;
    }
    const code = body[o + 1]!;
    const len = hdr === 4 ? u16(body, o + 2) : body[o + 2]!;
    if (o + hdr + len > end) {
      v.treatAsWithdraw(UpdateSub.ATTRIBUTE_LENGTH, body.slice(o, end));
      break;
    }
    const raw = body.subarray(o, o + hdr + len);
    const value = body.subarray(o + hdr, o + hdr + len);
    o += hdr + len;

    if (seen.has(code)) {
      // RFC 7606 §3 (g): repeated MP attributes reset; other repeats are dropped after the first.
      if (code === AttrCode.MP_REACH_NLRI || code === AttrCode.MP_UNREACH_NLRI) v.sessionReset(UpdateSub.MALFORMED_ATTRIBUTE_LIST);
      else v.discard(code);
      continue;
    }
    seen.add(code);

    const expected = EXPECTED_FLAGS[code];
    if (expected === undefined) {
      if (!(flags & O)) {
        // RFC 4271 §6.3, unchanged by RFC 7606: an unknown well-known attribute.
        v.sessionReset(UpdateSub.UNRECOGNIZED_WELL_KNOWN, raw.slice());
      } else if (flags & T) {
        (attrs.unknown ??= []).push({ flags, code, value: value.slice() } satisfies RawAttr);
      }
      // Unknown optional non-transitive attributes are quietly ignored.
      continue;
    }
    // RFC 7606 §3 (c): Optional/Transitive bits in conflict mean treat-as-withdraw.
    // MP attributes are still parsed so their prefixes can be withdrawn.
    const flagsBad = (flags & (O | T)) !== expected;
    if (flagsBad) v.treatAsWithdraw(UpdateSub.ATTRIBUTE_FLAGS, raw.slice());
    if (flagsBad && code !== AttrCode.MP_REACH_NLRI && code !== AttrCode.MP_UNREACH_NLRI) continue;

    const malformed = (sub: number) => v.treatAsWithdraw(sub, raw.slice());
    switch (code) {
      case AttrCode.ORIGIN:
        if (len !== 1) malformed(UpdateSub.ATTRIBUTE_LENGTH);
        else if (value[0]! > 2) malformed(UpdateSub.INVALID_ORIGIN);
        else attrs.origin = value[0]!;
        break;
      case AttrCode.AS_PATH: {
        const segs = parseSegments(value, ctx.fourOctetAs ? 4 : 2);
        // RFC 7607: AS 0 in a path is malformed as well.
        if (!segs || segs.some((s) => s.asns.includes(0))) v.treatAsWithdraw(UpdateSub.MALFORMED_AS_PATH);
        else attrs.asPath = segs;
        break;
      }
      case AttrCode.NEXT_HOP:
        if (len !== 4) malformed(UpdateSub.ATTRIBUTE_LENGTH);
        else attrs.nextHop = formatAddress(value, 1);
        break;
      case AttrCode.MED:
        if (len !== 4) malformed(UpdateSub.ATTRIBUTE_LENGTH);
        else attrs.med = u32(value, 0);
        break;
      case AttrCode.LOCAL_PREF:
        // RFC 7606 §7.5: from an external peer it is discarded whatever it holds.
        if (ctx.external) v.discard(code);
        else if (len !== 4) malformed(UpdateSub.ATTRIBUTE_LENGTH);
        else attrs.localPref = u32(value, 0);
        break;
      case AttrCode.ATOMIC_AGGREGATE:
        if (len !== 0) v.discard(code);
        else attrs.atomicAggregate = true;
        break;
      case AttrCode.AGGREGATOR: {
        const size = ctx.fourOctetAs ? 4 : 2;
        const asn = len === size + 4 ? (size === 4 ? u32(value, 0) : u16(value, 0)) : 0;
        // RFC 7606 §7.7 and RFC 7607: wrong length or AS 0 means discard.
        if (asn === 0) v.discard(code);
        else attrs.aggregator = { asn, address: formatAddress(value.subarray(size), 1) };
        break;
      }
      case AttrCode.COMMUNITIES:
        if (len === 0 || len % 4 !== 0) malformed(UpdateSub.OPTIONAL_ATTRIBUTE);
        else attrs.communities = Array.from({ length: len / 4 }, (_, i) => u32(value, i * 4));
        break;
      case AttrCode.ORIGINATOR_ID:
        if (len !== 4) malformed(UpdateSub.ATTRIBUTE_LENGTH);
        else attrs.originatorId = u32(value, 0);
        break;
      case AttrCode.CLUSTER_LIST:
        if (len === 0 || len % 4 !== 0) malformed(UpdateSub.ATTRIBUTE_LENGTH);
        else attrs.clusterList = Array.from({ length: len / 4 }, (_, i) => u32(value, i * 4));
        break;
      case AttrCode.MP_REACH_NLRI: {
        const r = parseMpReach(value);
        // RFC 7606 §7.11: a next hop length that hides where the NLRI starts, or bad NLRI, resets.
        if (r === "malformed") v.sessionReset(UpdateSub.OPTIONAL_ATTRIBUTE, raw.slice());
        else if (r) attrs.mpReach = r;
        break;
      }
      case AttrCode.MP_UNREACH_NLRI: {
        const r = parseMpUnreach(value);
        if (r === "malformed") v.sessionReset(UpdateSub.OPTIONAL_ATTRIBUTE, raw.slice());
        else if (r) attrs.mpUnreach = r;
        break;
      }
      case AttrCode.AS4_PATH: {
        // RFC 6793 §3: between two 4-octet speakers AS4_PATH is ignored; malformed ones are discarded (§6).
        const segs = ctx.fourOctetAs ? undefined : parseSegments(value, 4);
        if (!segs || segs.some((s) => s.type > 2 || s.asns.includes(0))) v.discard(code);
        else as4Path = segs;
        break;
      }
      case AttrCode.AS4_AGGREGATOR: {
        const asn = !ctx.fourOctetAs && len === 8 ? u32(value, 0) : 0;
        if (asn === 0) v.discard(code);
        else as4Aggregator = { asn, address: formatAddress(value.subarray(4), 1) };
        break;
      }
    }
  }

  // RFC 6793 §4.2.3: rebuild the real path and aggregator behind 2-octet speakers.
  if (!ctx.fourOctetAs && (as4Path || as4Aggregator)) {
    if (attrs.aggregator && attrs.aggregator.asn !== AS_TRANS) {
      // The aggregator is a 2-octet speaker that did not pass AS4 attributes on: they are stale.
    } else {
      if (as4Aggregator && attrs.aggregator) attrs.aggregator = as4Aggregator;
      if (as4Path && attrs.asPath) attrs.asPath = mergeAs4Path(attrs.asPath, as4Path);
    }
  }

  const reachable = nlri.length > 0 || (attrs.mpReach?.nlri.length ?? 0) > 0;
  if (reachable) {
    // RFC 7606 §3 (d): a missing well-known mandatory attribute is treat-as-withdraw;
    // NEXT_HOP is mandatory only for NLRI in the UPDATE's own field (RFC 4760 §3).
    const missing = [
      !seen.has(AttrCode.ORIGIN) ? AttrCode.ORIGIN : 0,
      !seen.has(AttrCode.AS_PATH) ? AttrCode.AS_PATH : 0,
      nlri.length > 0 && !seen.has(AttrCode.NEXT_HOP) ? AttrCode.NEXT_HOP : 0,
    ].find((c) => c !== 0);
    if (missing) v.treatAsWithdraw(UpdateSub.MISSING_WELL_KNOWN, Uint8Array.of(missing));
    // RFC 4271 §6.3 / RFC 7606 §7.2: from an external peer the leftmost AS must be the peer's.
    const first = attrs.asPath?.[0];
    if (ctx.external && attrs.asPath && (!first || first.type !== 2 || first.asns[0] !== ctx.peerAs)) {
      v.treatAsWithdraw(UpdateSub.MALFORMED_AS_PATH);
    }
    // RFC 4271 §6.3: a semantically wrong NEXT_HOP makes the route ignored, with no NOTIFICATION.
    if (nlri.length > 0 && attrs.nextHop && !unicastV4(attrs.nextHop)) v.treatAsWithdraw(UpdateSub.INVALID_NEXT_HOP);
  }

  if (v.reset) return { action: "reset", error: v.reset };
  if (v.withdraw) {
    const all = [...withdrawn, ...nlri, ...(attrs.mpReach?.nlri ?? []), ...(attrs.mpUnreach?.withdrawn ?? [])];
    return { action: "withdraw", withdrawn: all, reason: v.withdraw };
  }
  return { action: "accept", update: { type: "update", withdrawn, attrs, nlri }, discarded: v.discarded };
}

function unicastV4(addr: string): boolean {
  const first = Number(addr.split(".")[0]);
  return addr !== "0.0.0.0" && addr !== "255.255.255.255" && !(first >= 224 && first <= 239);
}

/** undefined for a family Twill does not carry (ignored), "malformed" when the NLRI cannot be found. */
function parseMpReach(b: Uint8Array): MpReach | undefined | "malformed" {
  if (b.length < 5) return "malformed";
  const afi = u16(b, 0);
  const safi = b[2]!;
  const nhLen = b[3]!;
  if (4 + nhLen + 1 > b.length) return "malformed";
  if (!isFamily(afi, safi)) return undefined;
  const nh = b.subarray(4, 4 + nhLen);
  let nextHops: string[];
  if (afi === 1 && nhLen === 4) nextHops = [formatAddress(nh, 1)];
  else if (afi === 2 && nhLen === 16) nextHops = [formatAddress(nh, 2)];
  else if (afi === 2 && nhLen === 32) nextHops = [formatAddress(nh.subarray(0, 16), 2), formatAddress(nh.subarray(16), 2)];
  else return "malformed";
  // One reserved octet (formerly SNPAs) precedes the NLRI (RFC 4760 §3).
  const nlri = decodePrefixes(b.subarray(4 + nhLen + 1), afi);
  if (!nlri) return "malformed";
  return { afi, safi, nextHops, nlri };
}

function parseMpUnreach(b: Uint8Array): MpUnreach | undefined | "malformed" {
  if (b.length < 3) return "malformed";
  const afi = u16(b, 0);
  const safi = b[2]!;
  if (!isFamily(afi, safi)) return undefined;
  const withdrawn = decodePrefixes(b.subarray(3), afi);
  return withdrawn ? { afi, safi, withdrawn } : "malformed";
}
