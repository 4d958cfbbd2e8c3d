/** Nearest-rank percentile of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function mean(samples: readonly number[]): number {
  return samples.reduce((a, b) => a + b, 0) / samples.length;
}

export const round = (v: number, digits = 2): number => Number(v.toFixed(digits));

export const median = (xs: readonly number[]): number => percentile(xs, 50);

/** P(X ≤ k) for X ~ Binomial(n, 1/2). */
function binomialHalfCdf(n: number, k: number): number {
  let term = 0.5 ** n;
  let sum = term;
  for (let i = 1; i <= k; i++) {
    term = (term * (n - i + 1)) / i;
    sum += term;
  }
  return sum;
}

/**
 * A distribution-free confidence interval for the median: the order
 * statistics x(k) and x(n+1-k) with the largest k for which the interval's
 * coverage is at least `level`. Needs no assumption about the noise (iperf3
 * on shared cores is not normal). Fewer than 6 samples cannot reach 95 %:
 * then the interval is the whole range, and `level` says what it reaches.
 */
export function medianInterval(samples: readonly number[], level = 0.95): { low: number; high: number; level: number } {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  let k = 1;
  while (k + 1 <= n / 2 && 1 - 2 * binomialHalfCdf(n, k) >= level) k++;
  return { low: s[k - 1]!, high: s[n - k]!, level: 1 - 2 * binomialHalfCdf(n, k - 1) };
}
