import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { TwillError } from "../lib/errors.ts";
import { parseCidr } from "../lib/net/cidr.ts";
import { DEFAULT_NODE_FILE } from "../lib/node-file.ts";

// The daemon's configuration: the ConfigMap's config.yaml (manifests/) plus
// per-node settings from flags and environment. Parsed once, strictly: an
// unknown backend or a malformed file stops the daemon before it touches
// anything, with one clear line.

export interface VxlanConfig {
  vni: number;
  port: number;
  directRouting: boolean;
}

/** The bgp backend (docs/bgp.md): iBGP full mesh between nodes by default. */
export interface BgpConfig {
  asn: number;
  port: number;
  mesh: boolean;
  /** Seconds peers keep Twill's routes while it restarts (RFC 4724). */
  restartTime: number;
  /** With serviceProxy: announce Services' ClusterIP, externalIP and LoadBalancer /32s (ETP Local: only while a local endpoint exists). */
  advertiseServices: boolean;
}

export interface DaemonConfig {
  clusterCIDR: string;
  backend: string;
  /** 0 = detect from the underlay. */
  mtu: number;
  masquerade: boolean;
  policy: boolean;
  /** Drop a new pod's traffic until its NetworkPolicy is programmed. */
  policyFailClosed: boolean;
  /** New pods' veths take the underlay's GSO/GRO sizes when above 64 KiB (BIG TCP; backends without encapsulation). */
  bigTcp: boolean;
  /** Twill proxies Services on this node (daemon/proxy, docs/services.md); kube-proxy must not run. Off by default. */
  serviceProxy: boolean;
  vxlan: VxlanConfig;
  /** Present when config.yaml has a bgp section; the bgp backend defaults it otherwise. */
  bgp?: BgpConfig;
}

export const DEFAULT_BGP: BgpConfig = { asn: 64512, port: 179, mesh: true, restartTime: 120, advertiseServices: false };

function parseBgp(v: unknown, source: string): BgpConfig {
  const b = (v ?? {}) as Record<string, unknown>;
  const out = { ...DEFAULT_BGP, ...b } as BgpConfig;
  if (!Number.isInteger(out.asn) || out.asn < 1 || out.asn > 0xffffffff) throw bad(`${source}: bgp.asn must be 1..4294967295`);
  if (!Number.isInteger(out.port) || out.port < 1 || out.port > 65535) throw bad(`${source}: bgp.port must be 1..65535`);
  if (typeof out.mesh !== "boolean") throw bad(`${source}: bgp.mesh must be true or false`);
  if (typeof out.advertiseServices !== "boolean") throw bad(`${source}: bgp.advertiseServices must be true or false`);
  if (!Number.isInteger(out.restartTime) || out.restartTime < 0 || out.restartTime > 4095) throw bad(`${source}: bgp.restartTime must be 0..4095 seconds`);
  return { asn: out.asn, port: out.port, mesh: out.mesh, restartTime: out.restartTime, advertiseServices: out.advertiseServices };
}

function bad(msg: string, details?: string): TwillError {
  return new TwillError("CONFIG_INVALID", msg, details);
}

export function parseConfig(text: string, source = "config.yaml"): DaemonConfig {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw bad(`${source} is not valid YAML`, String(err));
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  if (typeof o !== "object" || Array.isArray(o)) throw bad(`${source} must be a mapping`);
  if (typeof o.clusterCIDR !== "string") throw bad(`${source}: clusterCIDR is required (e.g. 10.244.0.0/16)`);
  parseCidr(o.clusterCIDR);
  const backend = o.backend ?? "vxlan";
  if (typeof backend !== "string") throw bad(`${source}: backend must be a name`);
  const mtu = o.mtu ?? 0;
  if (typeof mtu !== "number" || !Number.isInteger(mtu) || (mtu !== 0 && (mtu < 576 || mtu > 65535))) {
    throw bad(`${source}: mtu must be 0 (detect) or between 576 and 65535`);
  }
  const v = (o.vxlan ?? {}) as Record<string, unknown>;
  const vxlan: VxlanConfig = {
    vni: typeof v.vni === "number" ? v.vni : 1,
    port: typeof v.port === "number" ? v.port : 8472,
    directRouting: v.directRouting === true,
  };
  if (!Number.isInteger(vxlan.vni) || vxlan.vni < 1 || vxlan.vni > 16_777_215) throw bad(`${source}: vxlan.vni must be 1..16777215`);
  for (const key of ["masquerade", "policy", "policyFailClosed", "bigTcp", "serviceProxy"]) {
    if (o[key] !== undefined && typeof o[key] !== "boolean") throw bad(`${source}: ${key} must be true or false`);
  }
  return {
    clusterCIDR: o.clusterCIDR,
    backend,
    mtu,
    masquerade: o.masquerade !== false,
    policy: o.policy !== false,
    policyFailClosed: o.policyFailClosed !== false,
    bigTcp: o.bigTcp !== false,
    serviceProxy: o.serviceProxy === true,
    vxlan,
    ...(o.bgp !== undefined ? { bgp: parseBgp(o.bgp, source) } : {}),
  };
}

export function loadConfig(path: string): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw bad(`cannot read ${path}`, String(err));
  }
  return parseConfig(text, path);
}

export interface NodeSettings {
  nodeName: string;
  kubeconfig: string | undefined;
  nodeFile: string;
  healthAddress: string;
  healthPort: number;
  resyncSeconds: number;
  /** The CNI IPAM data directory: allocation times for the policy-ready metric. */
  ipamDir: string;
  /** The `twill` binary (bgp: sets TCP MD5 keys with `twill md5sig`); where the image has it by default. */
  twillBinary: string;
}

export const DEFAULT_TWILL_BINARY = "/opt/twill/bin/twill";

export function nodeSettings(values: Record<string, string | undefined>, env: NodeJS.ProcessEnv): NodeSettings {
  const nodeName = values["node-name"] ?? env.NODE_NAME;
  if (!nodeName) throw bad("the node's name is unknown: set NODE_NAME (the DaemonSet does, from spec.nodeName) or --node-name");
  return {
    nodeName,
    kubeconfig: values.kubeconfig ?? env.KUBECONFIG,
    nodeFile: values["node-file"] ?? DEFAULT_NODE_FILE,
    healthAddress: values["health-address"] ?? "127.0.0.1",
    healthPort: Number(values["health-port"] ?? 9099),
    resyncSeconds: Number(values["resync-seconds"] ?? 10),
    ipamDir: values["ipam-dir"] ?? "/var/lib/cni/networks",
    twillBinary: values["twill-binary"] ?? DEFAULT_TWILL_BINARY,
  };
}
