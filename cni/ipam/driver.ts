import type { CniEnv } from "../env.ts";
import type { NetConf } from "../config.ts";
import type { Result } from "../spec.ts";
import type { NodeFileReader } from "./config.ts";

/**
 * How the plugin obtains addresses: in-process for twill-ipam (no second
 * exec on the ADD path), or by executing another IPAM plugin from CNI_PATH
 * as the spec describes (host-local, static, ...).
 */
export interface IpamDriver {
  add(): Promise<Result>;
  del(): Promise<void>;
  check(ips: string[]): Promise<void>;
  status(): Promise<void>;
  gc(): Promise<void>;
}

export interface IpamContext {
  env: CniEnv;
  conf: NetConf;
  /** The network config exactly as received, for delegation. */
  stdin: string;
  /** Reads the node file (once per plugin run: ADD needs it for IPAM and MTU). */
  readNode?: NodeFileReader;
}
