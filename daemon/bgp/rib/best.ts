import { pathLength } from "../codec/as-path.ts";
import { DEFAULT_LOCAL_PREF, LOCAL, type PeerInfo, type Route } from "./route.ts";

// The RFC 4271 §9.1.2 decision process for the attributes Twill uses, with
// the RFC 4456 §9 changes for route reflection. Routes Twill originates win
// outright: a node is the authority on its own pod CIDR.

export type PeerLookup = (id: string) => PeerInfo | undefined;

const localPref = (r: Route) => r.attrs.localPref ?? DEFAULT_LOCAL_PREF;
/** The neighbouring AS a route came from: the leftmost AS of its path (RFC 4271 §9.1.2.2 c). */
const neighbourAs = (r: Route) => r.attrs.asPath?.find((s) => s.type === 2)?.asns[0];
const minBy = <T>(xs: T[], key: (x: T) => number | bigint): T[] => {
  let best: T[] = [];
  let k: number | bigint | undefined;
  for (const x of xs) {
    const v = key(x);
    if (k === undefined || v < k) {
      k = v;
      best = [x];
    } else if (v === k) best.push(x);
  }
  return best;
};

export function selectBest(routes: Route[], peers: PeerLookup): Route | undefined {
  if (routes.length <= 1) return routes[0];
  const local = routes.find((r) => r.peer === LOCAL);
  if (local) return local;
  let c = minBy(routes, (r) => -localPref(r));
  c = minBy(c, (r) => pathLength(r.attrs.asPath));
  c = minBy(c, (r) => r.attrs.origin ?? 2);
  // MED compares only between routes from the same neighbouring AS: drop every
  // route some same-AS route beats on MED (missing MED = 0).
  c = c.filter((r) => !c.some((o) => o !== r && neighbourAs(o) === neighbourAs(r) && (o.attrs.med ?? 0) < (r.attrs.med ?? 0)));
  const info = (r: Route) => peers(r.peer);
  if (c.some((r) => info(r)?.internal === false)) c = c.filter((r) => info(r)?.internal === false);
  // RFC 4456 §9: a reflected route's ORIGINATOR_ID stands in for the peer's BGP Identifier.
  c = minBy(c, (r) => r.attrs.originatorId ?? info(r)?.bgpId ?? 0);
  c = minBy(c, (r) => r.attrs.clusterList?.length ?? 0);
  c = minBy(c, (r) => info(r)?.address ?? 0n);
  return c[0];
}
