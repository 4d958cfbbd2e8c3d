import type { SessionObserver } from "../backends/backend.ts";
import type { Metrics } from "./metrics.ts";

// BGP sessions as metrics, and as Events on this node when an operator must
// look: a session that was Established went down, or it keeps flapping.
// Peer labels are the configured peers (the mesh and the BGPPeers selecting
// this node), so their number is the operator's; a peer removed from the
// configuration loses its series.

/** This many downs within FLAP_WINDOW_MS make a peer "flapping". */
const FLAPS = 3;
const FLAP_WINDOW_MS = 10 * 60_000;

export interface SessionEvents {
  peerDown(peer: string, detail: string): void;
  peerFlapping(peer: string, downs: number, minutes: number): void;
}

export function sessionObserver(metrics: Metrics, events?: SessionEvents, now: () => number = Date.now): SessionObserver {
  let known = new Set<string>();
  const downs = new Map<string, number[]>();
  return {
    peers(addresses) {
      const next = new Set(addresses);
      for (const p of next) if (!known.has(p)) metrics.bgpSessionUp.set({ peer: p }, 0);
      for (const p of known) {
        if (next.has(p)) continue;
        metrics.bgpSessionUp.remove({ peer: p });
        metrics.bgpPrefixesReceived.remove({ peer: p });
        downs.delete(p);
      }
      known = next;
    },
    peerState(peer, up, detail) {
      metrics.bgpSessionUp.set({ peer }, up ? 1 : 0);
      metrics.bgpSessionChanges.inc({ peer, state: up ? "established" : "down" });
      if (up) return;
      const t = now();
      const recent = [...(downs.get(peer) ?? []).filter((x) => t - x < FLAP_WINDOW_MS), t];
      downs.set(peer, recent);
      events?.peerDown(peer, detail);
      if (recent.length >= FLAPS) events?.peerFlapping(peer, recent.length, FLAP_WINDOW_MS / 60_000);
    },
    prefixes(received, advertised) {
      for (const p of known) metrics.bgpPrefixesReceived.set({ peer: p }, received.get(p) ?? 0);
      metrics.bgpPrefixesAdvertised.set(advertised);
    },
  };
}
