import { RTPROT_TWILL } from "../../lib/kernel/protocols.ts";
import { errnoSentence } from "../../lib/netlink/errno.ts";
import { dumpRoutes, encodeRoute, parseRoute, RTN_BLACKHOLE, RTNH_F_ONLINK, type DumpedRoute } from "../../lib/netlink/routes.ts";
import { AF, readU16, readU32, RT_TABLE_MAIN, RTM, type MessageHeader } from "../../lib/netlink/rtnl.ts";
import type { RouteSpec } from "./desired.ts";
import { linkIndexes } from "./links.ts";
import { rtnl, type RtnlSocket } from "./netlink-socket.ts";
import { throwIfFailed, type Failed } from "./write-failures.ts";

// Twill's routes (protocol 211, main table) against the kernel over
// rtnetlink: read every pass (a dump of 100,000 routes takes ~0.25 s here,
// `ip -json` ~1 s), so a route deleted by hand, a device that took its routes
// with it, or a restart that finds the kernel already right are all seen the
// same way; then only the difference is written, as batches of
// RTM_NEWROUTE / RTM_DELROUTE (100,000 replaces ~0.5–0.9 s, `ip -batch` ~5 s).

const ERRNO_ESRCH = 3;
const ERRNO_ENOENT = 2;
const ERRNO_ENODEV = 19;
const ERRNO_EAFNOSUPPORT = 97;

/** Twill's routes in the kernel's main table, both families, as the kernel has them (output device by index). */
export async function twillRoutes(sock: RtnlSocket = rtnl): Promise<DumpedRoute[]> {
  const out: DumpedRoute[] = [];
  for (const family of [AF.INET, AF.INET6]) {
    await sock.dump((seq) => dumpRoutes(seq, family), "Twill's routes", (buf, m) => {
      const r = parseRoute(buf, m, RTPROT_TWILL);
      if (r && r.table === RT_TABLE_MAIN) out.push(r);
    }, [ERRNO_EAFNOSUPPORT]);
  }
  return out;
}

const same = (have: DumpedRoute | undefined, want: RouteSpec, oif: number | undefined) =>
  !!have && !!want.blackhole === have.blackhole && (want.blackhole || (have.gateway === want.via && have.oif === oif && have.onlink === want.onlink));

const describe = (verb: string, r: RouteSpec) =>
  r.blackhole ? `route ${verb} blackhole ${r.dst}` : `route ${verb} ${r.dst}${r.via ? ` via ${r.via}` : ""}${verb === "del" ? "" : ` dev ${r.dev}${r.onlink ? " onlink" : ""}`}`;

// IPv4 routes (all of a BGP feed) are diffed as numbers: key = destination
// address × 64 + prefix length, value = what is compared (gateway, output
// device, blackhole, onlink). Dumped as objects with their strings, 100,000
// routes were most of what a pass allocated, and a feed runs many passes
// (docs/bgp.md). Anything else (IPv6, an output device index past 2^19) takes
// the general path with DumpedRoute.
const OIF_LIMIT = 2 ** 19;
const sig4 = (gateway: number, oif: number, blackhole: boolean, onlink: boolean) => (blackhole ? 2 : gateway * 2 ** 21 + oif * 4 + (onlink ? 1 : 0));

/** "a.b.c.d" (until `end`) as a number; undefined when not a dotted quad. */
function ipv4Number(text: string, start = 0, end = text.length): number | undefined {
  let addr = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || octet > 255) return undefined;
      addr = addr * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48);
      digits++;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0 || octet > 255) return undefined;
  return addr * 256 + octet;
}

function key4(dst: string): number | undefined {
  const slash = dst.indexOf("/");
  if (slash < 0) return undefined;
  const addr = ipv4Number(dst, 0, slash);
  const len = Number(dst.slice(slash + 1));
  return addr === undefined || !(len >= 0 && len <= 32) ? undefined : addr * 64 + len;
}

const text4 = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** A dumped IPv4 route of Twill's in the main table, read straight off the bytes: [key, value], or undefined for any other. */
function scan4(buf: Uint8Array, m: MessageHeader): [number, number] | undefined {
  if (m.type !== RTM.NEWROUTE || m.length < 16 + 12) return undefined;
  const base = m.offset + 16;
  if (buf[base] !== AF.INET || buf[base + 5] !== RTPROT_TWILL) return undefined;
  const end = Math.min(m.offset + m.length, buf.length);
  let table = buf[base + 4]!;
  let dst = 0;
  let gateway = 0;
  let oif = 0;
  for (let at = base + 12; at + 4 <= end; ) {
    const len = readU16(buf, at);
    const type = readU16(buf, at + 2);
    if (len < 4 || at + len > end) return undefined;
    if (len === 8) {
      const v = type === 1 || type === 5 ? ((buf[at + 4]! << 24) | (buf[at + 5]! << 16) | (buf[at + 6]! << 8) | buf[at + 7]!) >>> 0 : readU32(buf, at + 4);
      if (type === 1) dst = v;
      else if (type === 5) gateway = v;
      else if (type === 4) oif = v;
      else if (type === 15) table = v;
    }
    at += (len + 3) & ~3;
  }
  if (table !== RT_TABLE_MAIN || oif >= OIF_LIMIT) return undefined;
  const blackhole = buf[base + 7] === RTN_BLACKHOLE;
  const onlink = (readU32(buf, base + 8) & RTNH_F_ONLINK) !== 0;
  return [dst * 64 + buf[base + 1]!, sig4(gateway, oif, blackhole, onlink)];
}

/**
 * Brings Twill's kernel routes to `want`; returns how many were written.
 * Throws, after writing all it could, when some failed. `indexes`: the
 * devices' interface indexes when the caller resolved them this pass
 * already (a device missing from it does not exist).
 */
export async function reconcileRoutes(want: RouteSpec[], sock: RtnlSocket = rtnl, indexes?: ReadonlyMap<string, number>): Promise<number> {
  const have4 = new Map<number, number>();
  const have = new Map<string, DumpedRoute>();
  for (const family of [AF.INET, AF.INET6]) {
    await sock.dump((seq) => dumpRoutes(seq, family), "Twill's routes", (buf, m) => {
      const v4 = scan4(buf, m);
      if (v4) return void have4.set(v4[0], v4[1]);
      const r = parseRoute(buf, m, RTPROT_TWILL);
      if (r && r.table === RT_TABLE_MAIN) have.set(r.dst, r);
    }, [ERRNO_EAFNOSUPPORT]);
  }
  const devs = indexes ?? (await linkIndexes(new Set(want.filter((r) => !r.blackhole).map((r) => r.dev)), sock));
  const failed: Failed[] = [];
  const puts: RouteSpec[] = [];
  // What is left in have4 / have after the loop is not wanted: deleted below.
  const wanted = new Set<string>();
  for (const r of want) {
    const oif = devs.get(r.dev);
    if (!r.blackhole && oif === undefined) {
      failed.push({ what: describe("replace", r), why: errnoSentence(ERRNO_ENODEV) });
      wanted.add(r.dst);
      continue;
    }
    const k = key4(r.dst);
    const gw = r.blackhole || !r.via ? 0 : ipv4Number(r.via);
    if (k !== undefined && gw !== undefined && (r.blackhole || oif! < OIF_LIMIT)) {
      if (have4.get(k) !== sig4(gw, oif ?? 0, !!r.blackhole, r.onlink)) puts.push(r);
      have4.delete(k);
      continue;
    }
    if (!same(have.get(r.dst), r, oif)) puts.push(r);
    wanted.add(r.dst);
  }
  const noDevice = failed.length;
  const dels: DumpedRoute[] = [...have.values()].filter((r) => !wanted.has(r.dst));
  for (const [k, v] of have4) {
    // A route wanted but without its device stays until the device is back.
    const dst = `${text4(Math.floor(k / 64))}/${k % 64}`;
    if (wanted.has(dst)) continue;
    dels.push({ dst, gateway: v & 2 ? "" : text4(Math.floor(v / 2 ** 21)), oif: 0, table: RT_TABLE_MAIN, protocol: RTPROT_TWILL, blackhole: (v & 2) !== 0, onlink: (v & 1) !== 0 });
  }

  const putFailures = await sock.write(puts.length, (i, seq, buf, off) => {
    const r = puts[i]!;
    const w = r.blackhole ? { dst: r.dst, protocol: RTPROT_TWILL, blackhole: true } : { dst: r.dst, gateway: r.via || undefined, oif: devs.get(r.dev)!, protocol: RTPROT_TWILL, onlink: r.onlink };
    return encodeRoute(buf, off, "replace", seq, w);
  });
  for (const f of putFailures) failed.push({ what: describe("replace", puts[f.index]!), why: errnoSentence(f.errno) });
  const delFailures = await sock.write(dels.length, (i, seq, buf, off) => encodeRoute(buf, off, "delete", seq, { dst: dels[i]!.dst, protocol: RTPROT_TWILL, blackhole: dels[i]!.blackhole }));
  for (const f of delFailures) {
    // Gone already (someone else removed it between the read and the write): what was wanted.
    if (f.errno === ERRNO_ESRCH || f.errno === ERRNO_ENOENT) continue;
    const r = dels[f.index]!;
    failed.push({ what: describe("del", { dst: r.dst, via: r.gateway, dev: "", onlink: r.onlink, blackhole: r.blackhole }), why: errnoSentence(f.errno) });
  }

  throwIfFailed(failed, puts.length + dels.length + noDevice, "route writes");
  return puts.length + dels.length - putFailures.length - delFailures.length;
}
