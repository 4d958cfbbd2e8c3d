import { existsSync } from "node:fs";
import { readNodeFile, type NodeFile } from "../../lib/node-file.ts";
import type { CniLogger } from "../log.ts";
import type { NetConf } from "../config.ts";
import type { CniEnv } from "../env.ts";
import { DelegatedIpam } from "../ipam/delegate.ts";
import type { IpamDriver } from "../ipam/driver.ts";
import { LocalIpam } from "../ipam/local.ts";
import { CniError, ErrorCode } from "../spec.ts";

export const TWILL_IPAM = "twill-ipam";

export interface Invocation {
  env: CniEnv;
  conf: NetConf;
  stdin: string;
  log: CniLogger;
}

// The node file does not change during one short plugin run: read it once.
const nodeFiles = new Map<string, NodeFile | undefined>();
export function readNodeFileOnce(path: string): NodeFile | undefined {
  if (!nodeFiles.has(path)) nodeFiles.set(path, readNodeFile(path));
  return nodeFiles.get(path);
}

export function ipamFor(inv: Invocation): IpamDriver {
  const ctx = { env: inv.env, conf: inv.conf, stdin: inv.stdin, readNode: readNodeFileOnce };
  return inv.conf.ipam.type === TWILL_IPAM ? new LocalIpam(ctx) : new DelegatedIpam(ctx);
}

/** MTU precedence: the daemon's node file (it knows the underlay), then config, then 1500. */
export function podMtu(conf: NetConf, node: NodeFile | undefined): number {
  return node?.mtu ?? conf.mtu ?? 1500;
}

export function readNodeFileQuietly(path: string): NodeFile | undefined {
  try {
    return readNodeFileOnce(path);
  } catch {
    return undefined;
  }
}

export function requireNetns(netns: string): void {
  if (!existsSync(netns)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${netns} does not exist (the pod's network namespace is gone)`);
  }
}

/** Address without its prefix length. */
export function bareIp(cidr: string): string {
  const i = cidr.indexOf("/");
  return i < 0 ? cidr : cidr.slice(0, i);
}
