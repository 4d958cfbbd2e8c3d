import { AS_TRANS, HEADER_LEN, MAX_MESSAGE_LEN, MsgType } from "./types.ts";
import { as4PathOf, encodeSegments, needsAs4 } from "./as-path.ts";
import { encodePrefixes, familyOf, parseAddress } from "./prefix.ts";
import { AttrCode, AttrFlag, type PathAttrs, type Update } from "./update-types.ts";

// UPDATE encoding. Attributes go out in type-code order (RFC 4271 §5 asks
// senders to order them); values over 255 octets use the Extended Length bit.

const be16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const O = AttrFlag.OPTIONAL;
const T = AttrFlag.TRANSITIVE;

function attr(flags: number, code: number, value: number[]): number[] {
  const base = flags & ~AttrFlag.EXTENDED;
  return value.length > 255 ? [base | AttrFlag.EXTENDED, code, ...be16(value.length), ...value] : [base, code, value.length, ...value];
}

const ipv4 = (text: string) => [...(parseAddress(text, 1) ?? [0, 0, 0, 0])];

export function encodeAttrs(a: PathAttrs, fourOctetAs: boolean): number[] {
  const size = fourOctetAs ? 4 : 2;
  const out: number[] = [];
  const push = (bytes: number[]) => {
    for (const x of bytes) out.push(x);
  };
  if (a.origin !== undefined) push(attr(T, AttrCode.ORIGIN, [a.origin]));
  if (a.asPath) push(attr(T, AttrCode.AS_PATH, encodeSegments(a.asPath, size)));
  if (a.nextHop) push(attr(T, AttrCode.NEXT_HOP, ipv4(a.nextHop)));
  if (a.med !== undefined) push(attr(O, AttrCode.MED, be32(a.med)));
  if (a.localPref !== undefined) push(attr(T, AttrCode.LOCAL_PREF, be32(a.localPref)));
  if (a.atomicAggregate) push(attr(T, AttrCode.ATOMIC_AGGREGATE, []));
  if (a.aggregator) {
    const asn = size === 2 && a.aggregator.asn > 0xffff ? AS_TRANS : a.aggregator.asn;
    push(attr(O | T, AttrCode.AGGREGATOR, [...(size === 4 ? be32(asn) : be16(asn)), ...ipv4(a.aggregator.address)]));
  }
  if (a.communities) push(attr(O | T, AttrCode.COMMUNITIES, a.communities.flatMap(be32)));
  if (a.originatorId !== undefined) push(attr(O, AttrCode.ORIGINATOR_ID, be32(a.originatorId)));
  if (a.clusterList) push(attr(O, AttrCode.CLUSTER_LIST, a.clusterList.flatMap(be32)));
  if (a.mpReach) {
    const nh = a.mpReach.nextHops.flatMap((h) => [...(parseAddress(h, a.mpReach!.afi === 2 ? 2 : 1) ?? [])]);
    push(attr(O, AttrCode.MP_REACH_NLRI, [...be16(a.mpReach.afi), a.mpReach.safi, nh.length, ...nh, 0, ...encodePrefixes(a.mpReach.nlri)]));
  }
  if (a.mpUnreach) push(attr(O, AttrCode.MP_UNREACH_NLRI, [...be16(a.mpUnreach.afi), a.mpUnreach.safi, ...encodePrefixes(a.mpUnreach.withdrawn)]));
  // RFC 6793 §4.2.2: a 2-octet session carries the real path and aggregator in AS4 attributes.
  if (!fourOctetAs && a.asPath && needsAs4(a.asPath)) push(attr(O | T, AttrCode.AS4_PATH, encodeSegments(as4PathOf(a.asPath), 4)));
  if (!fourOctetAs && a.aggregator && a.aggregator.asn > 0xffff) {
    push(attr(O | T, AttrCode.AS4_AGGREGATOR, [...be32(a.aggregator.asn), ...ipv4(a.aggregator.address)]));
  }
  for (const u of a.unknown ?? []) push(attr(u.flags, u.code, [...u.value]));
  return out;
}

/** One UPDATE message, framed. */
export function encodeUpdate(u: Update, fourOctetAs: boolean): Uint8Array {
  const w = encodePrefixes(u.withdrawn);
  const a = encodeAttrs(u.attrs, fourOctetAs);
  const n = encodePrefixes(u.nlri);
  const len = HEADER_LEN + 2 + w.length + 2 + a.length + n.length;
  const out = new Uint8Array(len);
  out.fill(0xff, 0, 16);
  out.set(be16(len), 16);
  out[18] = MsgType.UPDATE;
  let o = HEADER_LEN;
  out.set(be16(w.length), o);
  out.set(w, o + 2);
  o += 2 + w.length;
  out.set(be16(a.length), o);
  out.set(a, o + 2);
  out.set(n, o + 2 + a.length);
  return out;
}

/**
 * UPDATEs that announce `prefixes` (IPv4 in the NLRI field, IPv6 in
 * MP_REACH_NLRI) with `attrs`, split so that none exceeds 4096 octets.
 */
export function encodeAnnouncements(attrs: PathAttrs, prefixes: readonly string[], nextHop6: string[] | undefined, fourOctetAs: boolean): Uint8Array[] {
  const v4 = prefixes.filter((p) => familyOf(p) === 1);
  const v6 = prefixes.filter((p) => familyOf(p) === 2);
  const out: Uint8Array[] = [];
  const base = { ...attrs, mpReach: undefined, mpUnreach: undefined };
  if (v4.length) out.push(...split(v4, (part) => encodeUpdate({ type: "update", withdrawn: [], attrs: base, nlri: part }, fourOctetAs)));
  if (v6.length && nextHop6) {
    const { nextHop: _drop, ...rest } = base;
    out.push(...split(v6, (part) => encodeUpdate({ type: "update", withdrawn: [], attrs: { ...rest, mpReach: { afi: 2, safi: 1, nextHops: nextHop6, nlri: part } }, nlri: [] }, fourOctetAs)));
  }
  return out;
}

/** UPDATEs withdrawing `prefixes`, split to fit. */
export function encodeWithdrawals(prefixes: readonly string[], fourOctetAs: boolean): Uint8Array[] {
  const v4 = prefixes.filter((p) => familyOf(p) === 1);
  const v6 = prefixes.filter((p) => familyOf(p) === 2);
  const out: Uint8Array[] = [];
  if (v4.length) out.push(...split(v4, (part) => encodeUpdate({ type: "update", withdrawn: part, attrs: {}, nlri: [] }, fourOctetAs)));
  if (v6.length) {
    out.push(...split(v6, (part) => encodeUpdate({ type: "update", withdrawn: [], attrs: { mpUnreach: { afi: 2, safi: 1, withdrawn: part } }, nlri: [] }, fourOctetAs)));
  }
  return out;
}

/**
 * Packs prefixes greedily into messages of at most 4096 octets: the fixed
 * part is measured once with no prefixes, then each prefix adds 1 + its octets.
 */
function split(prefixes: readonly string[], make: (part: string[]) => Uint8Array): Uint8Array[] {
  const room = MAX_MESSAGE_LEN - make([]).length;
  const out: Uint8Array[] = [];
  let part: string[] = [];
  let used = 0;
  for (const p of prefixes) {
    const size = 1 + ((Number(p.slice(p.indexOf("/") + 1)) + 7) >> 3);
    if (used + size > room && part.length) {
      out.push(make(part));
      part = [];
      used = 0;
    }
    part.push(p);
    used += size;
  }
  if (part.length) out.push(make(part));
  return out;
}
