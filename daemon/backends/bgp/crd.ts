import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { TwillError } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { parseIp } from "../../../lib/net/cidr.ts";
import { watchResource, type ListPage, type ResourceWatch } from "../../cluster/resource-watch.ts";
import { PASSWORD_NAMESPACE, PASSWORD_SECRET, passwordFor, watchPasswordSecret, type PasswordSecret, type PasswordWatch, type SecretRef } from "./password.ts";
import type { MaxPrefixes } from "../../bgp/speaker/prefix-limit.ts";
import { parseSelector } from "./selector.ts";

// The bgp backend's cluster settings from the apiserver: the BGPConfiguration
// named "default" and every BGPPeer (manifests/twill.yaml has their schemas).
// The apiserver validates the schema; what it cannot (a node selector's
// syntax, a password in a Secret the daemon may not read) is checked here. An
// invalid object is logged once per version and left out: it never stops the
// daemon. Passwords are resolved from their Secret (password.ts) on every read.

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
  /** spec.password.secretKeyRef: where the TCP MD5 password is. */
  passwordRef?: SecretRef;
  /** spec.maxPrefixes; undefined = the default for external peers, limit 0 = no limit. */
  maxPrefixes?: MaxPrefixes;
  /** The password itself, once read from the Secret (BgpCrds.peers() fills it in). */
  password?: string;
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
  let passwordRef: SecretRef | undefined;
  if (s.password !== undefined) {
    const ref = (s.password as { secretKeyRef?: { name?: unknown; key?: unknown } }).secretKeyRef;
    if (typeof ref?.name !== "string" || typeof ref.key !== "string" || !ref.key) throw invalid("BGPPeer", name, "spec.password.secretKeyRef needs a name and a key");
    // RBAC (Role twill-bgp-password) lets the daemon read this one Secret only.
    if (ref.name !== PASSWORD_SECRET) throw invalid("BGPPeer", name, `spec.password.secretKeyRef.name is "${ref.name}", but the daemon may read only Secret ${PASSWORD_NAMESPACE}/${PASSWORD_SECRET}: put the password under a key there and name that Secret`);
    passwordRef = { name: ref.name, key: ref.key };
  }
  let maxPrefixes: MaxPrefixes | undefined;
  if (s.maxPrefixes !== undefined) {
    const m = s.maxPrefixes as { limit?: unknown; warningPercent?: unknown; restartSeconds?: unknown };
    if (!isInt(m.limit, 0, 0xffffffff)) throw invalid("BGPPeer", name, "spec.maxPrefixes.limit must be 0 (no limit) or a prefix count up to 4294967295");
    if (m.warningPercent !== undefined && !isInt(m.warningPercent, 1, 100)) throw invalid("BGPPeer", name, "spec.maxPrefixes.warningPercent must be 1..100");
    if (m.restartSeconds !== undefined && !isInt(m.restartSeconds, 1, 86400)) throw invalid("BGPPeer", name, "spec.maxPrefixes.restartSeconds must be 1..86400");
    maxPrefixes = { limit: m.limit, ...(m.warningPercent !== undefined ? { warningPercent: m.warningPercent as number } : {}), ...(m.restartSeconds !== undefined ? { restartSeconds: m.restartSeconds as number } : {}) };
  }
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
    ...(passwordRef ? { passwordRef } : {}),
    ...(maxPrefixes ? { maxPrefixes } : {}),
  };
}

/**
 * The peers with their passwords filled in from the Secret (pure): a peer whose
 * password cannot be had is left out and comes back in `missing` with why.
 */
export function withPasswords(peers: BgpPeerSpec[], secret: PasswordSecret): { peers: BgpPeerSpec[]; missing: Map<string, TwillError> } {
  const out: BgpPeerSpec[] = [];
  const missing = new Map<string, TwillError>();
  for (const p of peers) {
    if (!p.passwordRef) {
      out.push(p);
      continue;
    }
    // Before the first read of the Secret the peer waits, unlogged.
    if (!secret.synced) continue;
    const pw = passwordFor(p.name, p.passwordRef, secret);
    if (pw instanceof TwillError) missing.set(p.name, pw);
    else out.push({ ...p, password: pw });
  }
  return { peers: out, missing };
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

/** Logs each peer's missing password once, until its reason changes or it is found. */
function missingLogger(log: Logger) {
  const logged = new Map<string, string>();
  return (missing: Map<string, TwillError>, present: BgpPeerSpec[]) => {
    for (const [peer, e] of missing) {
      if (logged.get(peer) === e.message) continue;
      logged.set(peer, e.message);
      log.error({ code: e.code, peer }, e.message);
    }
    for (const p of present) {
      if (p.password !== undefined && logged.delete(p.name)) log.info({ peer: p.name }, "BGPPeer's TCP MD5 password found in its Secret: the peer is configured");
    }
    for (const k of logged.keys()) if (!missing.has(k) && !present.some((p) => p.name === k)) logged.delete(k);
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
  const logMissing = missingLogger(log);
  // The Secret is watched from the first BGPPeer with a password on: a cluster
  // without MD5 makes no request for it.
  let secret: PasswordWatch | undefined;
  const listeners: (() => void)[] = [];
  return {
    config: () => parseConfigs(configs.list().filter((o) => o.metadata?.name === CONFIG_NAME))[0],
    peers: () => {
      const all = parsePeers(peers.list());
      if (!all.some((p) => p.passwordRef)) return all;
      if (!secret) {
        secret = watchPasswordSecret(kc, log, onError);
        for (const fn of listeners) secret.onChange(fn);
      }
      const r = withPasswords(all, secret.secret());
      logMissing(r.missing, r.peers);
      return r.peers;
    },
    synced: () => configs.synced() && peers.synced(),
    onChange: (fn) => {
      listeners.push(fn);
      configs.onChange(fn);
      peers.onChange(fn);
      secret?.onChange(fn);
    },
    stop: () => {
      configs.stop();
      peers.stop();
      secret?.stop();
    },
  };
}
