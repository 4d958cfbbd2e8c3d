import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { TwillError } from "./errors.ts";
import { GSO_MAX_SIZE, type GsoSizes } from "./netlink/rtnl.ts";

// The node file is the one contract between the daemon (writer) and the CNI
// plugin (reader): this node's pod CIDRs and the MTU pods must use. The daemon
// writes it atomically (temp file + rename) and only once the dataplane is
// programmed, so the plugin never reads a half-written or premature file.

export const DEFAULT_NODE_FILE = "/run/twill/node.json";

export interface NodeFile {
  /** Format version, bumped on incompatible change. */
  version: 1;
  nodeName: string;
  /** This node's pod CIDRs (one per IP family), e.g. ["10.244.1.0/24"]. */
  podCIDRs: string[];
  /** The MTU for pod interfaces (underlay MTU minus encapsulation). */
  mtu: number;
  /** Cluster-wide pod CIDRs, for consumers that need to tell pod traffic apart. */
  clusterCIDRs: string[];
  /**
   * BIG TCP: GSO/GRO size limits for new pods' veths (the pod's end, the
   * node's end), taken from the underlay device. Absent: the kernel's 64 KiB.
   */
  gso?: { pod: GsoSizes; host: GsoSizes };
  /**
   * The daemon's unix socket for the plugin's pod notices (lib/pod-notice.ts),
   * relative to this file's directory (the daemon's container and the host
   * mount that directory at different paths). Absent: no handshake (policy is
   * off, or an older daemon).
   */
  daemonSocket?: string;
}

/** The socket's file name beside the node file. */
export const DAEMON_SOCKET_NAME = "daemon.sock";

/** Where the daemon's socket is, as seen by whoever reads the node file at `nodeFilePath`. */
export function daemonSocketPath(file: NodeFile, nodeFilePath: string): string | undefined {
  if (!file.daemonSocket) return undefined;
  return isAbsolute(file.daemonSocket) ? file.daemonSocket : join(dirname(nodeFilePath), file.daemonSocket);
}

const sizes = (v: unknown): v is GsoSizes => {
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) > 0 && (n as number) <= GSO_MAX_SIZE;
  return typeof v === "object" && v !== null && ok((v as GsoSizes).ipv4) && ok((v as GsoSizes).ipv6);
};

export function parseNodeFile(text: string, path: string): NodeFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TwillError("NODE_FILE_INVALID", `node file ${path} is not valid JSON; the daemon rewrites it on start`, String(err));
  }
  const o = raw as Partial<NodeFile>;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");
  if (o.version !== 1 || typeof o.nodeName !== "string" || !strings(o.podCIDRs) || o.podCIDRs.length === 0 || typeof o.mtu !== "number" || !strings(o.clusterCIDRs)) {
    throw new TwillError("NODE_FILE_INVALID", `node file ${path} lacks version 1, nodeName, podCIDRs, mtu or clusterCIDRs; the daemon rewrites it on start`);
  }
  if (o.gso !== undefined && !(sizes(o.gso.pod) && sizes(o.gso.host))) {
    throw new TwillError("NODE_FILE_INVALID", `node file ${path}: gso needs pod and host sizes (ipv4, ipv6) between 1 and ${GSO_MAX_SIZE}; the daemon rewrites it on start`);
  }
  if (o.daemonSocket !== undefined && (typeof o.daemonSocket !== "string" || o.daemonSocket === "")) {
    throw new TwillError("NODE_FILE_INVALID", `node file ${path}: daemonSocket must be a non-empty path; the daemon rewrites it on start`);
  }
  return o as NodeFile;
}

/** Reads the node file; returns undefined when it does not exist (yet). */
export function readNodeFile(path: string = DEFAULT_NODE_FILE): NodeFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new TwillError("NODE_FILE_UNREADABLE", `cannot read node file ${path}`, String(err));
  }
  return parseNodeFile(text, path);
}

/** Writes the node file so that readers see the old or the new content, never a mix. */
export function writeNodeFile(file: NodeFile, path: string = DEFAULT_NODE_FILE): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w", 0o644);
  try {
    writeSync(fd, JSON.stringify(file, null, 2) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
