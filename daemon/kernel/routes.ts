import { RTPROT_TWILL } from "../../lib/kernel/protocols.ts";
import { errnoSentence } from "../../lib/netlink/errno.ts";
import { dumpRoutes, encodeRoute, parseRoute, type DumpedRoute } from "../../lib/netlink/routes.ts";
import { AF, RT_TABLE_MAIN } from "../../lib/netlink/rtnl.ts";
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

/**
 * Brings Twill's kernel routes to `want`; returns how many were written.
 * Throws, after writing all it could, when some failed. `indexes`: the
 * devices' interface indexes when the caller resolved them this pass
 * already (a device missing from it does not exist).
 */
export async function reconcileRoutes(want: RouteSpec[], sock: RtnlSocket = rtnl, indexes?: ReadonlyMap<string, number>): Promise<number> {
  const have = new Map((await twillRoutes(sock)).map((r) => [r.dst, r]));
  const devs = indexes ?? (await linkIndexes(new Set(want.filter((r) => !r.blackhole).map((r) => r.dev)), sock));
  const failed: Failed[] = [];
  const puts: RouteSpec[] = [];
  for (const r of want) {
    const oif = devs.get(r.dev);
    if (!r.blackhole && oif === undefined) failed.push({ what: describe("replace", r), why: errnoSentence(ERRNO_ENODEV) });
    else if (!same(have.get(r.dst), r, oif)) puts.push(r);
  }
  const noDevice = failed.length;
  const wanted = new Set(want.map((r) => r.dst));
  const dels = [...have.values()].filter((r) => !wanted.has(r.dst));

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
