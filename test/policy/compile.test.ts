import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { contains, disjoint, type Box } from "../../daemon/policy/boxes.ts";

const overlaps = (a: Box, b: Box) =>
  a.addr[0] <= b.addr[1] && b.addr[0] <= a.addr[1] && a.proto[0] <= b.proto[1] && b.proto[0] <= a.proto[1] && a.port[0] <= b.port[1] && b.port[0] <= a.port[1];

const range = (max: number) => fc.tuple(fc.integer({ min: 0, max }), fc.integer({ min: 0, max })).map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a]));
const box = fc.record({
  addr: range(40).map(([a, b]): [bigint, bigint] => [BigInt(a), BigInt(b)]),
  proto: range(8),
  port: range(30),
});

describe("disjoint decomposition (nft interval sets reject overlapping elements)", () => {
  it("covers exactly the same points with boxes that do not overlap", () => {
    fc.assert(
      fc.property(fc.array(box, { maxLength: 8 }), (boxes) => {
        const out = disjoint(boxes);
        for (let i = 0; i < out.length; i++) for (let j = i + 1; j < out.length; j++) expect(overlaps(out[i]!, out[j]!)).toBe(false);
        for (let a = 0; a <= 41; a += 3) for (let p = 0; p <= 9; p++) for (let t = 0; t <= 31; t += 2) {
          expect(contains(out, BigInt(a), p, t)).toBe(contains(boxes, BigInt(a), p, t));
        }
      }),
      { numRuns: 150 },
    );
  });

  it("merges what can be merged: one rule for all ports of two adjacent protocols stays one box", () => {
    expect(disjoint([{ addr: [0n, 9n], proto: [6, 6], port: [0, 65535] }, { addr: [0n, 9n], proto: [7, 7], port: [0, 65535] }])).toEqual([{ addr: [0n, 9n], proto: [6, 7], port: [0, 65535] }]);
  });
});
