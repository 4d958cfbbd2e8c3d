import { DEFAULT_NODE_FILE } from "../lib/node-file.ts";
import { CniError, ErrorCode, requireSupportedVersion } from "./spec.ts";

/** The gateway every pod routes through; the host end of its veth answers for it. */
export const POD_GATEWAY_V4 = "169.254.1.1";
export const POD_GATEWAY_V6 = "fe80::1";

export interface IpamConf {
  type: string;
  [key: string]: unknown;
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  mtu: number | undefined;
  nodeFile: string;
  logFile: string | undefined;
  logLevel: string;
  /**
   * How long ADD waits for the daemon to say the pod's policy is in the
   * kernel (ms; 0: do not ask). On timeout ADD succeeds anyway.
   */
  daemonTimeoutMs: number;
  /**
   * Which attachment of a pod carries its default route(s): "auto" (absent)
   * gives it to the first attachment only; true asks for it (refused when
   * another attachment holds it); false never adds one.
   */
  defaultRoute: "auto" | boolean;
  ipam: IpamConf;
  prevResult: unknown;
  /** The raw config, for handing to a delegated IPAM plugin unchanged. */
  raw: Record<string, unknown>;
}

/** Long enough for a loaded node's daemon (p99 0.43 s from status to kernel under bench:pods), short beside a pod's start. */
export const DEFAULT_DAEMON_TIMEOUT_MS = 2000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function bad(msg: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, msg);
}

export function decodeJson(stdin: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(ErrorCode.DecodeFailure, "network config on stdin is not valid JSON", String(err));
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.DecodeFailure, "network config on stdin must be a JSON object");
  }
  return raw as Record<string, unknown>;
}

/** Parses the plugin's network config; `needIpam` is false for VERSION-like uses. */
export function parseNetConf(raw: Record<string, unknown>): NetConf {
  const cniVersion = requireSupportedVersion(raw.cniVersion);
  const name = raw.name;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw bad(`network name ${JSON.stringify(name)} is missing or invalid (letters, digits, _ . - only)`);
  }
  const type = typeof raw.type === "string" ? raw.type : "";
  if (!type) throw bad("network config has no plugin type");
  const mtu = raw.mtu;
  if (mtu !== undefined && (typeof mtu !== "number" || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535)) {
    throw bad(`mtu ${JSON.stringify(mtu)} must be an integer between 576 and 65535`);
  }
  for (const key of ["nodeFile", "logFile", "logLevel"] as const) {
    if (raw[key] !== undefined && typeof raw[key] !== "string") throw bad(`${key} must be a string`);
  }
  const timeout = raw.daemonTimeoutMs;
  if (timeout !== undefined && (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 0 || timeout > 60_000)) {
    throw bad(`daemonTimeoutMs ${JSON.stringify(timeout)} must be an integer between 0 and 60000 (milliseconds)`);
  }
  if (raw.defaultRoute !== undefined && typeof raw.defaultRoute !== "boolean") {
    throw bad(`defaultRoute ${JSON.stringify(raw.defaultRoute)} must be true or false (absent: the pod's first attachment takes the default route)`);
  }
  const ipam = raw.ipam;
  if (typeof ipam !== "object" || ipam === null || typeof (ipam as IpamConf).type !== "string" || !(ipam as IpamConf).type) {
    throw bad('network config needs "ipam" with a "type" (e.g. "twill-ipam")');
  }
  return {
    cniVersion,
    name,
    type,
    mtu: mtu as number | undefined,
    nodeFile: (raw.nodeFile as string | undefined) ?? DEFAULT_NODE_FILE,
    logFile: raw.logFile as string | undefined,
    logLevel: (raw.logLevel as string | undefined) ?? "info",
    daemonTimeoutMs: (timeout as number | undefined) ?? DEFAULT_DAEMON_TIMEOUT_MS,
    defaultRoute: (raw.defaultRoute as boolean | undefined) ?? "auto",
    ipam: ipam as IpamConf,
    prevResult: raw.prevResult,
    raw,
  };
}
