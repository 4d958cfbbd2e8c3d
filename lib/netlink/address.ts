import { AF, ipBytes } from "./rtnl.ts";

// Addresses (IP and MAC) in and out of rtattrs without a detour through bigints: the
// daemon encodes and reads them by the 100,000 (routes) and 10,000s
// (neighbours, FDB). Pure, like rtnl.ts.

/** Writes dotted-quad IPv4 text[start, end) at buf[at]; false when it is not one (then it is IPv6, or invalid). */
function putIPv4(text: string, start: number, end: number, buf: Uint8Array, at: number): boolean {
  let octet = 0;
  let digits = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || n === 3) return false;
      buf[at + n++] = octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return false;
    } else return false;
  }
  if (digits === 0 || n !== 3) return false;
  buf[at + 3] = octet;
  return true;
}

/** Writes an address as an rtattr at buf[off]; returns its length in bytes (4 or 16). */
export function putAddressAttr(buf: Uint8Array, dv: DataView, off: number, type: number, text: string, end: number): number {
  let len = 4;
  if (!putIPv4(text, 0, end, buf, off + 4)) {
    const { bytes } = ipBytes(text.slice(0, end));
    buf.set(bytes, off + 4);
    len = bytes.length;
  }
  dv.setUint16(off, 4 + len, true);
  dv.setUint16(off + 2, type, true);
  return len;
}

/** An address of `family` at b[off] as text (IPv6 in the canonical form ip prints). */
export function formatAddress(family: number, b: Uint8Array, off: number): string {
  if (family === AF.INET) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16));
  // The canonical form (RFC 5952): the longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) (best = i), (bestLen = j - i);
    i = j > i ? j : i + 1;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** A link-layer address as "aa:bb:…" (lower case, as ip prints it). */
export function formatMac(b: Uint8Array, off: number, len: number): string {
  if (len === 6) return `${HEX[b[off]!]}:${HEX[b[off + 1]!]}:${HEX[b[off + 2]!]}:${HEX[b[off + 3]!]}:${HEX[b[off + 4]!]}:${HEX[b[off + 5]!]}`;
  const parts: string[] = [];
  for (let i = 0; i < len; i++) parts.push(HEX[b[off + i]!]!);
  return parts.join(":");
}
