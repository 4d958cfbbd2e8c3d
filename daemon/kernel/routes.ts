import { TwillError } from "../../lib/errors.ts";
import { RTPROT_TWILL } from "../../lib/kernel/protocols.ts";
import type { RouteSpec } from "./desired.ts";
import { readJson, withPrefix } from "./ip.ts";
import { RouteWriter } from "./route-writer.ts";

// Twill's routes (protocol 211) against the kernel, still as desired set vs
// current set, but "current" is what Twill last wrote successfully: listing
// 100,000 routes as JSON costs more than writing them, so the kernel is read
// only when asked (start, periodic resync) and after any failed write. A route
// someone deletes behind Twill's back comes back on the next resync.

interface KRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  type?: string;
}

async function kernelRoutes(netns: string | undefined): Promise<RouteSpec[]> {
  const routes = await readJson<KRoute>(["ip", ...(netns ? ["-n", netns] : []), "-j", "route", "show", "proto", String(RTPROT_TWILL)]);
  return routes.map((r) => ({
    dst: withPrefix(r.dst),
    via: r.gateway ?? "",
    dev: r.dev ?? "",
    onlink: r.flags?.includes("onlink") ?? false,
    ...(r.type === "blackhole" ? { blackhole: true } : {}),
  }));
}

const sameRoute = (a: RouteSpec | undefined, b: RouteSpec) => !!a && a.via === b.via && a.dev === b.dev && a.onlink === b.onlink && !!a.blackhole === !!b.blackhole;

const replaceLine = (r: RouteSpec) =>
  r.blackhole ? `route replace blackhole ${r.dst} proto ${RTPROT_TWILL}` : `route replace ${r.dst} via ${r.via} dev ${r.dev}${r.onlink ? " onlink" : ""} proto ${RTPROT_TWILL}`;
const deleteLine = (r: RouteSpec) => `route del ${r.blackhole ? "blackhole " : ""}${r.dst} proto ${RTPROT_TWILL}`;

export class KernelRoutes {
  /** What the kernel holds, as far as Twill knows; undefined = read it before the next diff. */
  private have: Map<string, RouteSpec> | undefined;
  private readonly writer: RouteWriter;
  private readonly netns: string | undefined;

  /** `netns`: a named namespace to work in (tests); by default the daemon's own. */
  constructor(netns?: string) {
    this.netns = netns;
    this.writer = new RouteWriter(netns);
  }

  /** Brings Twill's kernel routes to `want`; returns how many were written. */
  async sync(want: RouteSpec[], readKernel: boolean): Promise<number> {
    if (readKernel || !this.have) this.have = new Map((await kernelRoutes(this.netns)).map((r) => [r.dst, r]));
    const have = this.have;
    const wantByDst = new Map(want.map((r) => [r.dst, r]));
    const put = want.filter((r) => !sameRoute(have.get(r.dst), r));
    const del = [...have.values()].filter((r) => !wantByDst.has(r.dst));
    const lines = [...put.map(replaceLine), ...del.map(deleteLine)];
    if (lines.length === 0) return 0;
    // Recorded up front; any failure drops the whole record so the kernel is read again.
    for (const r of put) have.set(r.dst, r);
    for (const r of del) have.delete(r.dst);
    let errors;
    try {
      errors = await this.writer.write(lines);
    } catch (err) {
      this.have = undefined;
      throw err;
    }
    if (errors.length > 0) {
      this.have = undefined;
      const [e] = errors;
      throw new TwillError("KERNEL_WRITE", `ip ${e!.line} failed (${errors.length} of ${lines.length} route writes failed); the kernel is re-read on the next reconcile`, errors.slice(0, 10).map((x) => `${x.line}: ${x.error}`).join("\n"));
    }
    return lines.length;
  }

  close(): void {
    this.writer.close();
  }
}
