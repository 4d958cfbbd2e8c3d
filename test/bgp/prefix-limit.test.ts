import { describe, expect, it } from "vitest";
import { parseBgpPeer } from "../../daemon/backends/bgp/crd.ts";
import { DEFAULT_PEER_MAX_PREFIXES, wantedPeers } from "../../daemon/backends/bgp/settings.ts";
import { decodeMessage } from "../../daemon/bgp/codec/decode.ts";
import { encodeMessage } from "../../daemon/bgp/codec/encode.ts";
import { learnedPrefixBudget, PEAK_HEAP_BYTES_PER_PREFIX } from "../../daemon/backends/bgp/memory-guard.ts";
import { maxPrefixesNotification, PrefixLimit } from "../../daemon/bgp/speaker/prefix-limit.ts";

// The per-peer prefix limit's pure parts: the verdicts, the backoff, the
// RFC 4486 NOTIFICATION on the wire, and the BGPPeer field with its default.
// test/bgp/interop-max-prefixes.test.ts has a real peer sending too many.

const self = { asn: 64512, port: 179, routerId: "10.0.0.9", restartTime: 120 };
const local = { name: "n", ip: "10.0.0.9", podCIDRs: ["10.244.9.0/24"], annotations: {} };
const peerObj = (spec: Record<string, unknown>) => ({ metadata: { name: "tor" }, spec: { peerIP: "10.0.0.1", asNumber: 65001, ...spec } });

describe("per-peer maximum prefix count", () => {
  it("warns once per session at the threshold, trips past the limit, backs off doubling until the table settles", () => {
    const l = new PrefixLimit({ limit: 10, warningPercent: 50, restartSeconds: 5 });
    expect([l.check(4), l.check(5), l.check(7), l.check(10), l.check(11)]).toEqual(["ok", "warn", "ok", "ok", "exceeded"]);
    expect([l.trip(), l.trip(), l.trip()]).toEqual([5, 10, 20]);
    l.sessionUp();
    expect(l.check(6)).toBe("warn");
    l.settled(8);
    expect(l.trip()).toBe(5);
    const d = new PrefixLimit({ limit: 1000 });
    expect([d.warnAt, d.trip()]).toEqual([800, 60]);
  });

  it("the NOTIFICATION is Cease / Maximum Number of Prefixes Reached with AFI, SAFI and the limit as data (RFC 4486 §4)", () => {
    const wire = encodeMessage(maxPrefixesNotification(100_000));
    const r = decodeMessage(wire);
    expect(r.ok).toBe(true);
    if (r.ok !== true) return;
    expect(r.message).toMatchObject({ type: "notification", code: 6, subcode: 1 });
    expect([...(r.message as { data: Uint8Array }).data]).toEqual([0, 1, 1, 0x00, 0x01, 0x86, 0xa0]);
  });

  it("a BGPPeer without the field gets the default limit, limit 0 means none, bad values are refused", () => {
    const cfg = (spec: Record<string, unknown>) => wantedPeers(self, false, 64512, [], [parseBgpPeer(peerObj(spec))], local).get("10.0.0.1");
    expect(cfg({})?.maxPrefixes).toEqual({ limit: DEFAULT_PEER_MAX_PREFIXES });
    expect(cfg({ maxPrefixes: { limit: 0 } })?.maxPrefixes).toBeUndefined();
    expect(cfg({ maxPrefixes: { limit: 50, warningPercent: 90, restartSeconds: 30 } })?.maxPrefixes).toEqual({ limit: 50, warningPercent: 90, restartSeconds: 30 });
    expect(() => parseBgpPeer(peerObj({ maxPrefixes: { limit: -1 } }))).toThrow(/spec.maxPrefixes.limit/);
    expect(() => parseBgpPeer(peerObj({ maxPrefixes: { limit: 5, warningPercent: 0 } }))).toThrow(/warningPercent/);
    // Mesh peers (other Twill nodes, announcing their pod CIDRs) have no limit.
    const mesh = wantedPeers(self, true, 64512, [{ name: "m", ip: "10.0.0.2", podCIDRs: [], annotations: {} }], [], local);
    expect(mesh.get("10.0.0.2")?.maxPrefixes).toBeUndefined();
  });
});

describe("node-wide learned-prefix budget", () => {
  it("is what the heap left after the daemon's own use holds at the peak cost per prefix, never below a floor", () => {
    const MiB = 1 << 20;
    const heap = (limit: number, used: number) => ({ heap_size_limit: limit * MiB, used_heap_size: used * MiB }) as ReturnType<typeof import("node:v8").getHeapStatistics>;
    expect(learnedPrefixBudget(heap(140, 36))).toBe(Math.floor(((140 - 36 - 48) * MiB) / PEAK_HEAP_BYTES_PER_PREFIX));
    expect(learnedPrefixBudget(heap(268, 36))).toBeGreaterThan(learnedPrefixBudget(heap(140, 36)));
    expect(learnedPrefixBudget(heap(64, 60))).toBe(10_000);
  });
});
