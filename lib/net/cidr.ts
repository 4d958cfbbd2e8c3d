import ipaddr from "ipaddr.js";
import { TwillError } from "../errors.ts";

// Address math on top of ipaddr.js (parsing and formatting), with addresses as
// bigints so the same code serves IPv4 and IPv6.

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The network address (host bits cleared). */
  network: bigint;
  prefix: number;
}

const bits = (f: Family): number => (f === 4 ? 32 : 128);

export function parseIp(text: string): { family: Family; value: bigint } {
  if (!ipaddr.isValid(text)) throw new TwillError("IP_INVALID", `"${text}" is not an IP address`);
  const addr = ipaddr.parse(text);
  const family: Family = addr.kind() === "ipv4" ? 4 : 6;
  let value = 0n;
  for (const byte of addr.toByteArray()) value = (value << 8n) | BigInt(byte);
  return { family, value };
}

export function formatIp(family: Family, value: bigint): string {
  const n = bits(family) / 8;
  const bytes: number[] = new Array(n);
  for (let i = n - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Parses "10.244.1.0/24"; host bits set in the text are cleared. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  if (slash < 0) throw new TwillError("CIDR_INVALID", `"${text}" is not a CIDR (expected address/prefix)`);
  const { family, value } = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d+$/.test(prefixText) || prefix > bits(family)) {
    throw new TwillError("CIDR_INVALID", `"${text}" has an invalid prefix length`);
  }
  return { family, network: value & mask(family, prefix), prefix };
}

export function mask(family: Family, prefix: number): bigint {
  const total = BigInt(bits(family));
  const all = (1n << total) - 1n;
  return (all >> (total - BigInt(prefix))) << (total - BigInt(prefix));
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.family, c.network)}/${c.prefix}`;
}

/** The last address of the block (the broadcast address for IPv4). */
export function lastAddress(c: Cidr): bigint {
  return c.network | (~mask(c.family, c.prefix) & ((1n << BigInt(bits(c.family))) - 1n));
}

export function cidrContains(c: Cidr, family: Family, value: bigint): boolean {
  return family === c.family && (value & mask(c.family, c.prefix)) === c.network;
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.family, inner.network);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrWithin(a, b) || cidrWithin(b, a);
}

export function hostPrefix(family: Family): number {
  return bits(family);
}
