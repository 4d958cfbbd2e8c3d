import type { PathAttrs } from "../codec/update-types.ts";
import { DEFAULT_LOCAL_PREF, LOCAL, type LocalSpeaker, type PeerInfo, type Route } from "./route.ts";

// Which best routes go to which peer and with what attributes: RFC 4271
// §9.1.3 and §5.1 for eBGP/iBGP, RFC 4456 §6 and §8 for reflection.

export interface Export {
  attrs: PathAttrs;
  /** The speaker puts its own address on the session as the next hop. */
  nextHopSelf: boolean;
}

/**
 * Marks a Service address a node originates (docs/services.md): each node decides for itself whether to
 * announce it (externalTrafficPolicy Local: only with a local endpoint), so one learned from another node is
 * never passed on to another AS, and the mark itself stays inside ours. 64512:7357 (a private ASN's value).
 */
export const SERVICE_ROUTE_COMMUNITY = ((64512 << 16) | 7357) >>> 0;

/** What `to` should receive for `route`, or undefined when nothing (then any earlier announcement is withdrawn). */
export function exportRoute(route: Route, from: PeerInfo | undefined, to: PeerInfo, local: LocalSpeaker): Export | undefined {
  if (route.peer === to.id) return undefined; // never back to where it came from
  const { mpReach: _r, mpUnreach: _u, ...marked } = route.attrs;
  const service = marked.communities?.includes(SERVICE_ROUTE_COMMUNITY) ?? false;
  if (service && !to.internal && route.peer !== LOCAL) return undefined;
  const a = service && !to.internal ? withoutServiceMark(marked) : marked;
  if (!to.internal) {
    // To another AS: prepend ours, our address as next hop; LOCAL_PREF and the
    // reflection attributes stay inside the AS, a neighbour's MED is not passed on.
    const first = a.asPath?.[0];
    const asPath = first && first.type === 2 && first.asns.length < 255
      ? [{ type: 2, asns: [local.asn, ...first.asns] }, ...(a.asPath ?? []).slice(1)]
      : [{ type: 2, asns: [local.asn] }, ...(a.asPath ?? [])];
    const { localPref: _l, originatorId: _o, clusterList: _c, med, ...rest } = a;
    return { attrs: { ...rest, asPath, unknown: passAlong(a), ...(route.peer === LOCAL && med !== undefined ? { med } : {}) }, nextHopSelf: true };
  }
  const localPref = a.localPref ?? DEFAULT_LOCAL_PREF;
  if (route.peer === LOCAL || (from && !from.internal)) {
    return { attrs: { ...a, asPath: a.asPath ?? [], localPref, unknown: passAlong(a) }, nextHopSelf: true };
  }
  // iBGP-learned to iBGP: only a reflector passes it on, and only client ↔ anyone (RFC 4456 §6).
  if (local.clusterId === undefined || !from) return undefined;
  if (!from.rrClient && !to.rrClient) return undefined;
  // RFC 4456 §8: the originator keeps its ID; the cluster is prepended.
  if (route.attrs.originatorId === to.bgpId) return undefined;
  return {
    attrs: { ...a, localPref, originatorId: a.originatorId ?? from.bgpId, clusterList: [local.clusterId, ...(a.clusterList ?? [])], unknown: passAlong(a) },
    nextHopSelf: false,
  };
}

function withoutServiceMark(a: PathAttrs): PathAttrs {
  const communities = a.communities!.filter((c) => c !== SERVICE_ROUTE_COMMUNITY);
  const { communities: _c, ...rest } = a;
  return communities.length ? { ...rest, communities } : rest;
}

/** Unknown optional transitive attributes go on with the Partial bit set (RFC 4271 §5). */
function passAlong(a: PathAttrs) {
  const out = (a.unknown ?? []).filter((u) => u.flags & 0x40).map((u) => ({ ...u, flags: u.flags | 0x20 }));
  return out.length ? out : undefined;
}
