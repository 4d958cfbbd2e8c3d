// The CNI specification's types, versions and error codes (spec 1.1.0, with
// results converted to the format of whichever version the runtime asked for).

export const SPEC_VERSION = "1.1.0";
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

/** Error codes from the spec ("Error" section); 100 and up are Twill's own. */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  // Twill-specific
  RangeExhausted: 100,
  AddressConflict: 101,
  NetnsFailure: 102,
  CheckFailed: 103,
  KernelFailure: 104,
  DelegateFailed: 105,
} as const;

export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, msg: string, details = "") {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface IpConfig {
  /** CIDR notation: the address and the prefix length of its subnet. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in Twill's internal (version-free) form. */
export interface Result {
  interfaces: Interface[];
  ips: IpConfig[];
  routes: Route[];
  dns: Dns;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

export function requireSupportedVersion(v: unknown): string {
  if (typeof v !== "string" || v === "") {
    throw new CniError(ErrorCode.InvalidConfig, "network config has no cniVersion");
  }
  if (!isSupportedVersion(v)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cniVersion ${v} is not supported; use one of ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  return v;
}

function familyOf(cidr: string): "4" | "6" {
  return cidr.includes(":") ? "6" : "4";
}

/** Renders a result in the wire format of `cniVersion`. */
export function formatResult(r: Result, cniVersion: string): Record<string, unknown> {
  const legacy = compareVersions(cniVersion, "1.0.0") < 0;
  const v11 = compareVersions(cniVersion, "1.1.0") >= 0;
  const out: Record<string, unknown> = { cniVersion };
  if (r.interfaces.length > 0) {
    out.interfaces = r.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (v11 && i.mtu) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      return o;
    });
  }
  out.ips = r.ips.map((ip) => ({
    ...(legacy ? { version: familyOf(ip.address) } : {}),
    address: ip.address,
    ...(ip.gateway ? { gateway: ip.gateway } : {}),
    ...(ip.interface !== undefined ? { interface: ip.interface } : {}),
  }));
  if (r.routes.length > 0) {
    out.routes = r.routes.map((rt) =>
      v11 ? { ...rt } : { dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) },
    );
  }
  out.dns = r.dns;
  return out;
}

/** Reads a result of any supported version (prevResult, a delegated IPAM plugin's output). */
export function parseResult(raw: unknown): Result {
  if (typeof raw !== "object" || raw === null) {
    throw new CniError(ErrorCode.DecodeFailure, "result is not a JSON object");
  }
  const o = raw as Record<string, unknown>;
  const arr = (v: unknown): Record<string, unknown>[] =>
    Array.isArray(v) ? (v.filter((x) => typeof x === "object" && x !== null) as Record<string, unknown>[]) : [];
  const interfaces: Interface[] = arr(o.interfaces).map((i) => ({
    name: String(i.name ?? ""),
    ...(typeof i.mac === "string" ? { mac: i.mac } : {}),
    ...(typeof i.mtu === "number" ? { mtu: i.mtu } : {}),
    ...(typeof i.sandbox === "string" ? { sandbox: i.sandbox } : {}),
  }));
  const ips: IpConfig[] = arr(o.ips).map((ip) => {
    if (typeof ip.address !== "string") throw new CniError(ErrorCode.DecodeFailure, "result has an IP without an address");
    return {
      address: ip.address,
      ...(typeof ip.gateway === "string" ? { gateway: ip.gateway } : {}),
      ...(typeof ip.interface === "number" ? { interface: ip.interface } : {}),
    };
  });
  const routes: Route[] = arr(o.routes).map((rt) => {
    if (typeof rt.dst !== "string") throw new CniError(ErrorCode.DecodeFailure, "result has a route without dst");
    return { ...(rt as unknown as Route) };
  });
  const dns = typeof o.dns === "object" && o.dns !== null ? (o.dns as Dns) : {};
  return { interfaces, ips, routes, dns };
}
