import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { TwillError } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { parseIp } from "../../../lib/net/cidr.ts";
import { watchResource, type ListPage, type ResourceWatch } from "../../cluster/resource-watch.ts";
import { parseSelector } from "./selector.ts";

// The bgp backend's cluster settings from the apiserver: the BGPConfiguration
// named "default" and every BGPPeer (manifests/twill.yaml has their schemas).
// The apiserver validates the schema; what it cannot (a node selector's
// syntax, a password Twill cannot apply) is checked here. An invalid object
// is logged once per version and left out: it never stops the daemon.

const GROUP = "twill.dev";
const VERSION = "v1alpha1";
export const CONFIG_NAME = "default";

export interface ClusterBgp {
  asn?: number;
  mesh?: boolean;
  port?: number;
  routerIdSource?: "InternalIP" | "Annotation";
  restartTime?: number;
}

export interface BgpPeerSpec {
  name: string;
  address: string;
  asn: number;
  selects: (labels: Record<string, string>) => boolean;
  routeReflector: boolean;
  holdTime?: number;
  restartTime?: number;
}

interface Obj {
  metadata?: { name?: string; resourceVersion?: string };
  spec?: Record<string, unknown>;
}

const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;

function invalid(kind: string, name: string, why: string): TwillError {
  return new TwillError("BGP_CRD_INVALID", `${kind} ${name} is ignored: ${why}; fix it with kubectl edit ${kind.toLowerCase()} ${name}`);
}

/** The settings in a BGPConfiguration (fields it leaves out keep config.yaml's values). */
export function parseBgpConfiguration(o: Obj): ClusterBgp {
  const name = o.metadata?.name ?? "";
  const s = o.spec ?? {};
  const out: ClusterBgp = {};
  if (s.asNumber !== undefined) {
    if (!isInt(s.asNumber, 1, 0xffffffff)) throw invalid("BGPConfiguration", name, "spec.asNumber must be 1..4294967295");
    out.asn = s.asNumber;
  }
  if (s.nodeToNodeMesh !== undefined) {
    if (typeof s.nodeToNodeMesh !== "boolean") throw invalid("BGPConfiguration", name, "spec.nodeToNodeMesh must be true or false");
    out.mesh = s.nodeToNodeMesh;
  }
  if (s.listenPort !== undefined) {
    if (!isInt(s.listenPort, 1, 65535)) throw invalid("BGPConfiguration", name, "spec.listenPort must be 1..65535");
    out.port = s.listenPort;
  }
  if (s.routerIdSource !== undefined) {
    if (s.routerIdSource !== "InternalIP" && s.routerIdSource !== "Annotation") throw invalid("BGPConfiguration", name, "spec.routerIdSource must be InternalIP or Annotation");
    out.routerIdSource = s.routerIdSource;
  }
  if (s.gracefulRestartSeconds !== undefined) {
    if (!isInt(s.gracefulRestartSeconds, 0, 4095)) throw invalid("BGPConfiguration", name, "spec.gracefulRestartSeconds must be 0..4095");
    out.restartTime = s.gracefulRestartSeconds;
  }
  return out;
}

export function parseBgpPeer(o: Obj): BgpPeerSpec {
  const name = o.metadata?.name ?? "";
  const s = o.spec ?? {};
  const address = typeof s.peerIP === "string" ? s.peerIP : "";
  try {
    parseIp(address);
  } catch {
    throw invalid("BGPPeer", name, `spec.peerIP "${address}" is not an IP address`);
  }
  if (!isInt(s.asNumber, 1, 0xffffffff)) throw invalid("BGPPeer", name, "spec.asNumber must be 1..4294967295");
  const hold = s.holdTimeSeconds;
  if (hold !== undefined && !(hold === 0 || isInt(hold, 3, 65535))) throw invalid("BGPPeer", name, "spec.holdTimeSeconds must be 0 or 3..65535");
  const gr = s.gracefulRestartSeconds;
  if (gr !== undefined && !isInt(gr, 0, 4095)) throw invalid("BGPPeer", name, "spec.gracefulRestartSeconds must be 0..4095");
  // The speaker can set TCP_MD5SIG (RFC 2385) on its listener through the twill
  // binary (speaker/md5.ts; MD5 peers are passive), but the password's Secret
  // is not read from here yet: a peer with one is left out, since a router
  // configured for MD5 drops every unsigned segment anyway.
  if (s.password !== undefined) throw invalid("BGPPeer", name, "spec.password (TCP MD5) is not applied from BGPPeer yet: the speaker can set TCP_MD5SIG keys (passive peers, docs/bgp.md) but the daemon does not read the Secret yet; remove the password on both sides for now");
  let selects: BgpPeerSpec["selects"];
  try {
    selects = parseSelector(typeof s.nodeSelector === "string" ? s.nodeSelector : "");
  } catch (err) {
    throw invalid("BGPPeer", name, (err as Error).message);
  }
  return {
    name,
    address,
    asn: s.asNumber,
    selects,
    routeReflector: s.routeReflector === true,
    ...(hold !== undefined ? { holdTime: hold as number } : {}),
    ...(gr !== undefined ? { restartTime: gr as number } : {}),
  };
}

export interface BgpCrds {
  /** The "default" BGPConfiguration's settings; undefined when there is none (or it is invalid). */
  config(): ClusterBgp | undefined;
  peers(): BgpPeerSpec[];
  synced(): boolean;
  onChange(fn: () => void): void;
  stop(): void;
}

/** Parses each object once per resourceVersion; failures are logged once and the object is left out. */
function parsed<T>(log: Logger, parse: (o: Obj) => T) {
  const memo = new Map<string, { rv: string; value?: T }>();
  return (objs: Obj[]): T[] => {
    const out: T[] = [];
    const seen = new Set<string>();
    for (const o of objs) {
      const name = o.metadata?.name ?? "";
      const rv = o.metadata?.resourceVersion ?? "";
      seen.add(name);
      let m = memo.get(name);
      if (!m || m.rv !== rv) {
        m = { rv };
        try {
          m.value = parse(o);
        } catch (err) {
          const e = err as TwillError;
          log.error({ code: e.code }, e.message);
        }
        memo.set(name, m);
      }
      if (m.value !== undefined) out.push(m.value);
    }
    for (const k of memo.keys()) if (!seen.has(k)) memo.delete(k);
    return out;
  };
}

export function watchBgpCrds(kc: KubeConfig, log: Logger, onError: (err: unknown) => void = () => {}): BgpCrds {
  const api = kc.makeApiClient(CustomObjectsApi);
  const watch = (plural: string): ResourceWatch<Obj> =>
    watchResource<Obj>({
      kc,
      log,
      path: `/apis/${GROUP}/${VERSION}/${plural}`,
      what: plural,
      listPage: (cont) => api.listClusterCustomObject({ group: GROUP, version: VERSION, plural, limit: 500, ...(cont ? { _continue: cont } : {}) }) as Promise<ListPage<Obj>>,
      slim: (o) => ({ metadata: { name: o.metadata?.name ?? "", resourceVersion: o.metadata?.resourceVersion ?? "" }, spec: o.spec ?? {} }),
      onError,
    });
  const configs = watch("bgpconfigurations");
  const peers = watch("bgppeers");
  const parseConfigs = parsed(log, parseBgpConfiguration);
  const parsePeers = parsed(log, parseBgpPeer);
  return {
    config: () => parseConfigs(configs.list().filter((o) => o.metadata?.name === CONFIG_NAME))[0],
    peers: () => parsePeers(peers.list()),
    synced: () => configs.synced() && peers.synced(),
    onChange: (fn) => {
      configs.onChange(fn);
      peers.onChange(fn);
    },
    stop: () => {
      configs.stop();
      peers.stop();
    },
  };
}
