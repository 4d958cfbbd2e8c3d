import { describe, expect, it } from "vitest";
import { median, medianInterval } from "../../bench/support/stats.ts";

describe("medianInterval", () => {
  it("takes the order statistics whose binomial coverage reaches 95 %", () => {
    const nine = [9, 1, 8, 2, 7, 3, 6, 4, 5];
    // n = 9: [x(2), x(8)] covers the median with 1 − 2·P(Bin(9,½) ≤ 1) = 0.961.
    expect(medianInterval(nine)).toEqual({ low: 2, high: 8, level: 1 - (2 * 10) / 512 });
    const twelve = Array.from({ length: 12 }, (_, i) => 12 - i);
    // n = 12: [x(3), x(10)], 1 − 2·(1 + 12 + 66)/4096.
    expect(medianInterval(twelve)).toMatchObject({ low: 3, high: 10 });
    expect(medianInterval(twelve).level).toBeCloseTo(1 - (2 * 79) / 4096, 12);
  });

  it("falls back to the whole range, and says so, when there are too few samples for 95 %", () => {
    const r = medianInterval([3, 1, 2, 5, 4]);
    expect(r).toMatchObject({ low: 1, high: 5 });
    expect(r.level).toBeCloseTo(0.9375, 12);
  });

  it("median is the middle sample", () => {
    expect(median([5, 1, 3])).toBe(3);
  });
});
