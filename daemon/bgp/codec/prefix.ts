import { formatIp } from "../../../lib/net/cidr.ts";
import { Afi } from "./types.ts";

// NLRI prefixes (RFC 4271 §4.3, RFC 4760 §5): a length octet and the fewest
// octets holding that many bits. Prefixes travel through Twill as CIDR text
// ("10.244.1.0/24") so the RIB and the kernel layer share one key.

export type Family = 1 | 2;

const maxBits = (afi: Family) => (afi === Afi.IPV4 ? 32 : 128);

/** Decodes a run of prefixes; undefined when the run is syntactically wrong (a length over the family's bits, an overrun). */
export function decodePrefixes(b: Uint8Array, afi: Family): string[] | undefined {
  const out: string[] = [];
  const max = maxBits(afi);
  let o = 0;
  while (o < b.length) {
    const len = b[o]!;
    if (len > max) return undefined;
    const n = (len + 7) >> 3;
    if (o + 1 + n > b.length) return undefined;
    // Host bits beyond the length are ignored (RFC 4271 §4.3: "trailing bits irrelevant").
    const mask = len % 8 === 0 ? 0xff : (0xff << (8 - (len % 8))) & 0xff;
    if (afi === Afi.IPV4) {
      const at = (i: number) => (i < n ? (i === n - 1 ? b[o + 1 + i]! & mask : b[o + 1 + i]!) : 0);
      out.push(ipv4PrefixText(at(0), at(1), at(2), at(3), len));
    } else {
      const bytes = new Uint8Array(max / 8);
      bytes.set(b.subarray(o + 1, o + 1 + n));
      if (n > 0) bytes[n - 1]! &= mask;
      out.push(`${formatAddress(bytes, afi)}/${len}`);
    }
    o += 1 + n;
  }
  return out;
}

const textBuffer = Buffer.alloc(24);
function putDecimal(v: number, at: number): number {
  if (v >= 100) textBuffer[at++] = 48 + Math.floor(v / 100);
  if (v >= 10) textBuffer[at++] = 48 + (Math.floor(v / 10) % 10);
  textBuffer[at++] = 48 + (v % 10);
  return at;
}

/**
 * "a.b.c.d/len" as one flat string. A template literal of 13 characters or
 * more is a tree of string pieces in V8 (~80 bytes a prefix against ~40 for
 * a flat string); the RIB keeps one of these per prefix, a full table 1M.
 */
export function ipv4PrefixText(a: number, b: number, c: number, d: number, len: number): string {
  let at = putDecimal(a, 0);
  textBuffer[at++] = 46;
  at = putDecimal(b, at);
  textBuffer[at++] = 46;
  at = putDecimal(c, at);
  textBuffer[at++] = 46;
  at = putDecimal(d, at);
  textBuffer[at++] = 47;
  at = putDecimal(len, at);
  return textBuffer.toString("latin1", 0, at);
}

export function formatAddress(bytes: Uint8Array, afi: Family): string {
  if (afi === Afi.IPV4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  let v = 0n;
  for (const x of bytes) v = (v << 8n) | BigInt(x);
  return formatIp(6, v);
}

/** Address text to bytes; undefined when it is not an address of that family. */
export function parseAddress(text: string, afi: Family): Uint8Array | undefined {
  if (afi === Afi.IPV4) {
    const parts = text.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
    return Uint8Array.from(parts.map(Number));
  }
  if (!text.includes(":")) return undefined;
  const [head = "", tail, extra] = text.split("::");
  if (extra !== undefined) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const fill = 8 - h.length - t.length;
  if ((tail === undefined && fill !== 0) || fill < 0) return undefined;
  const all = [...h, ...new Array<string>(fill).fill("0"), ...t];
  if (all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

export function familyOf(prefix: string): Family {
  return prefix.includes(":") ? Afi.IPV6 : Afi.IPV4;
}

/** Encodes CIDR text prefixes; throws on text that is not a prefix (callers hold typed, local data). */
export function encodePrefixes(prefixes: readonly string[]): number[] {
  const out: number[] = [];
  for (const p of prefixes) {
    const slash = p.indexOf("/");
    const afi = familyOf(p);
    const bytes = parseAddress(p.slice(0, slash), afi);
    const len = Number(p.slice(slash + 1));
    if (!bytes || slash < 0 || !(len >= 0 && len <= maxBits(afi))) throw new Error(`not a prefix: ${p}`);
    out.push(len, ...bytes.subarray(0, (len + 7) >> 3));
  }
  return out;
}
