import { TwillError } from "../../../lib/errors.ts";
import { createLogger, type Logger } from "../../../lib/log.ts";
import type { Route } from "../../bgp/rib/route.ts";
import { LOCAL } from "../../bgp/rib/route.ts";
import { SERVICE_ROUTE_COMMUNITY } from "../../bgp/rib/export.ts";
import type { PathAttrs } from "../../bgp/codec/update-types.ts";
import type { PeerConfig, SpeakerConfig } from "../../bgp/speaker/config.ts";
import { Speaker, type SpeakerEvents } from "../../bgp/speaker/speaker.ts";
import type { ClusterView } from "../../cluster/view.ts";
import { DEFAULT_BGP, type DaemonConfig } from "../../config.ts";
import { emptyState, type DesiredState, type RouteSpec } from "../../kernel/desired.ts";
import { twillRoutes } from "../../kernel/routes.ts";
import type { Backend, LocalNode } from "../backend.ts";
import { onSameL2, peersOf } from "../peers.ts";
import type { BgpCrds } from "./crd.ts";
import { settingsFor, wantedPeers, type Settings } from "./settings.ts";

// bgp: no encapsulation; every node announces its pod CIDR over BGP (iBGP
// full mesh by default) and installs what it learns, Calico-style. The node's
// own block gets a blackhole route so addresses not (yet) given to a pod are
// dropped here instead of bouncing to the default route. The speaker knows
// nothing of Kubernetes: this file is the adapter.

/** What the backend needs of a speaker (the real one, or a stand-in in unit tests). */
export interface SpeakerLike {
  start(): Promise<void>;
  addPeer(cfg: PeerConfig): unknown;
  removePeer(address: string): void;
  peerAddresses(): string[];
  announce(prefix: string, attrs?: PathAttrs): void;
  withdraw(prefix: string): void;
  routes(): Route[];
  converged(): boolean;
}

export interface BgpBackendDeps {
  log?: Logger;
  makeSpeaker?: (cfg: SpeakerConfig, events: SpeakerEvents) => SpeakerLike;
  /** Whether Twill's routes are already in the kernel (a restart): then Twill restarts gracefully. */
  routesInstalled?: () => Promise<boolean>;
  now?: () => number;
  /** BGPConfiguration / BGPPeer from the apiserver; without it config.yaml's bgp section is all there is. */
  crds?: BgpCrds;
  /** The `twill` binary, which sets BGPPeers' TCP MD5 keys on the listener (`twill md5sig`). */
  twillBinary?: string;
}

const isV4 = (s: string) => !s.includes(":");
/** How long changes are gathered after the first: a base, plus time in proportion to the table a pass goes over. */
const GATHER_MS = 50;
const GATHER_MS_PER_ROUTE = 0.01;

export function bgpBackend(cfg: DaemonConfig, deps: BgpBackendDeps = {}): Backend {
  const bgp = cfg.bgp ?? DEFAULT_BGP;
  const log = deps.log ?? createLogger({ name: "twill-bgp" });
  const now = deps.now ?? Date.now;
  let speaker: SpeakerLike | undefined;
  let onChange: (() => void) | undefined;
  const announced = new Set<string>();
  /** Service /32s the proxy asks this node to originate (advertise). */
  let services: string[] = [];
  let started: Settings | undefined;
  let identityWarned = "";
  const peerCfgs = new Map<string, PeerConfig>();
  /** Set on a graceful restart: until every peer sent End-of-RIB (or restartTime passes) the kernel is left alone. */
  let holdUntil = 0;

  // A feed arrives as many UPDATEs: changes are gathered into one reconcile
  // for a window after the first (a throttle, not a debounce: kernel writes
  // start while the feed is still arriving; at 10k prefixes BIRD's whole
  // time is ~0.2 s). A pass dumps and diffs every route (~5 µs a route
  // here), so the window grows by 10 µs per route in the last desired set:
  // while a 100k feed streams in, reconciles take about a third of the
  // thread the speaker decodes it on. The agent folds changes that arrive
  // during a pass into the next one. A peer's End-of-RIB ends the wait: its
  // table is complete, nothing more is coming to gather.
  let lastRoutes = 0;
  let gatherTimer: NodeJS.Timeout | undefined;
  const kick = () => {
    if (!onChange || gatherTimer) return;
    gatherTimer = setTimeout(() => {
      gatherTimer = undefined;
      onChange?.();
    }, GATHER_MS + lastRoutes * GATHER_MS_PER_ROUTE);
    gatherTimer.unref();
  };
  const reconcileNow = () => {
    if (gatherTimer) clearTimeout(gatherTimer);
    gatherTimer = undefined;
    onChange?.();
  };

  return {
    name: "bgp",
    overhead: 0,
    async prepare(local: LocalNode): Promise<Record<string, string>> {
      if (speaker) return {};
      if (!isV4(local.info.ip)) throw new TwillError("BGP_NEEDS_IPV4", `the bgp backend needs an IPv4 node address for its BGP identifier; node ${local.info.name} has ${local.info.ip}`);
      if (deps.crds) {
        deps.crds.onChange(kick);
        await waitSynced(deps.crds, log);
      }
      started = settingsFor(bgp, deps.crds?.config(), local.info, log);
      const restarting = await (deps.routesInstalled ?? kernelHasTwillRoutes)();
      const sc: SpeakerConfig = {
        asn: started.asn,
        routerId: started.routerId,
        listen: { host: "0.0.0.0", port: started.port },
        localAddress: local.info.ip,
        connectRetryTime: 1,
        idleHoldTime: 2,
        gracefulRestart: { restartTime: started.restartTime, restarting },
        peers: [],
        ...(deps.twillBinary ? { md5Helper: deps.twillBinary } : {}),
      };
      const events: SpeakerEvents = {
        onBest: kick,
        onEndOfRib: reconcileNow,
        onPeerState: (peer, state, detail) => {
          log.info({ peer, state, detail }, "BGP peer");
          kick();
        },
      };
      const s = deps.makeSpeaker ? deps.makeSpeaker(sc, events) : new Speaker(sc, log, events);
      // Kept only once started: a start that fails (port 179 refused: EACCES without NET_BIND_SERVICE, or in
      // use) must fail every pass until one succeeds. Kept before, the next pass found a speaker and went on
      // without BGP — no listener, no session, the node reported healthy.
      await s.start();
      speaker = s;
      if (restarting) holdUntil = now() + started.restartTime * 1000;
      log.info({ asn: started.asn, port: started.port, routerId: started.routerId, restarting }, "BGP speaker started");
      return {};
    },
    desired(view: ClusterView, local: LocalNode): DesiredState {
      if (!speaker) throw new TwillError("BGP_NOT_STARTED", "the BGP speaker has not started yet (prepare failed?)");
      const s = speaker;
      const crdConfig = deps.crds?.config();
      // AS, port, router ID and restart time are the speaker's identity: they change at the next start only.
      const now_ = settingsFor(bgp, crdConfig, local.info, log);
      const key = identity(now_);
      if (started && key !== identity(started) && key !== identityWarned) {
        identityWarned = key;
        log.warn({ running: started, configured: now_ }, "BGP AS, listen port, router ID or restart time changed: restart the Twill daemon on this node to apply; sessions keep the running values");
      }
      // Peers (the mesh with mesh on, plus the BGPPeers selecting this node), re-created when their settings change.
      const want = wantedPeers(started!, crdConfig?.mesh ?? bgp.mesh, crdConfig?.asn ?? bgp.asn, peersOf(view, local), deps.crds?.peers() ?? [], local.info, log);
      for (const addr of s.peerAddresses()) {
        const w = want.get(addr);
        if (!w || JSON.stringify(w) !== JSON.stringify(peerCfgs.get(addr))) (s.removePeer(addr), peerCfgs.delete(addr));
      }
      const have = new Set(s.peerAddresses());
      for (const [addr, pc] of want) if (!have.has(addr)) (s.addPeer(pc), peerCfgs.set(addr, pc));

      const own = local.info.podCIDRs.filter(isV4);
      const originated = new Set([...own, ...services]);
      const serviceOnly = new Set(services.filter((p) => !own.includes(p)));
      for (const p of originated) if (!announced.has(p)) (s.announce(p, serviceOnly.has(p) ? { origin: 0, communities: [SERVICE_ROUTE_COMMUNITY] } : undefined), announced.add(p));
      for (const p of [...announced]) if (!originated.has(p)) (s.withdraw(p), announced.delete(p));

      // Graceful restart: the routes from before the restart stay until the peers have re-sent theirs.
      if (holdUntil && !s.converged() && now() < holdUntil) {
        throw new TwillError("BGP_CONVERGING", "waiting for BGP peers to re-send their routes after a restart; kernel routes are kept meanwhile");
      }
      holdUntil = 0;

      const state = emptyState();
      for (const dst of own) state.routes.push({ dst, via: "", dev: "", onlink: false, blackhole: true });
      // Many routes share a next hop: "on our L2?" is decided once per next hop, not per route (100k per pass).
      const reachable = new Map<string, boolean>();
      const onL2 = (ip: string) => reachable.get(ip) ?? reachable.set(ip, onSameL2(local, ip)).get(ip)!;
      // What this node originates is never installed from a peer (others announce the same Service /32s).
      const ownSet = originated;
      for (const r of s.routes()) {
        const spec = learnedRoute(r, local, ownSet, onL2);
        if (spec) state.routes.push(spec);
      }
      lastRoutes = state.routes.length;
      return state;
    },
    watch(cb: () => void): void {
      onChange = cb;
    },
    advertise(prefixes: string[]): void {
      const next = [...new Set(prefixes.filter(isV4))].sort();
      if (next.join() === services.join()) return;
      services = next;
      kick();
    },
  };
}

/** A learned best route as a kernel route; undefined for our own blocks and next hops off our L2 (no recursive lookup yet). */
function learnedRoute(r: Route, local: LocalNode, own: Set<string>, onL2: (ip: string) => boolean): RouteSpec | undefined {
  if (r.peer === LOCAL || !isV4(r.prefix) || own.has(r.prefix) || !r.nextHop || !onL2(r.nextHop)) return undefined;
  return { dst: r.prefix, via: r.nextHop, dev: local.underlay.dev, onlink: false };
}

const identity = (x: Settings) => `${x.asn} ${x.port} ${x.routerId} ${x.restartTime}`;

/** Waits for the first lists of BGPConfiguration and BGPPeer (the AS and port are fixed at start). */
async function waitSynced(crds: BgpCrds, log: Logger): Promise<void> {
  for (let i = 0; !crds.synced(); i++) {
    if (i === 50) log.warn({}, "still waiting for the BGPConfiguration and BGPPeer lists: are the CRDs from manifests/twill.yaml installed and may the daemon list them?");
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function kernelHasTwillRoutes(): Promise<boolean> {
  return (await twillRoutes()).length > 0;
}
