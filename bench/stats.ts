/** Value at quantile q (0..1) of the samples, nearest-rank on the sorted copy. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

export const median = (samples: readonly number[]): number => {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Largest |a[i] − b[i]| (infinite when the lengths differ): 0 when two outputs agree exactly. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** Timestamps (performance.now(), ms) of one generation as seen by whoever drove it. */
export interface StreamTiming {
  /** Generated tokens (the runtime's count, not the number of events). */
  tokens: number;
  /** The request was sent (server) or `evaluate` was called (raw). */
  startMs: number;
  firstTokenMs: number;
  lastTokenMs: number;
  /** The stream was complete (server: the `done` event arrived). */
  endMs: number;
  finishReason: string;
}

/** Tokens per second between the first and the last token: (n − 1) intervals over that span. */
export function decodeRate(t: StreamTiming): number {
  const span = t.lastTokenMs - t.firstTokenMs;
  return t.tokens > 1 && span > 0 ? ((t.tokens - 1) * 1000) / span : Number.NaN;
}

/** Aggregate tokens per second of concurrent streams: all tokens over first start to last end. */
export function aggregateRate(streams: readonly StreamTiming[]): number {
  const start = Math.min(...streams.map((s) => s.startMs));
  const end = Math.max(...streams.map((s) => s.endMs));
  const tokens = streams.reduce((sum, s) => sum + s.tokens, 0);
  return end > start ? (tokens * 1000) / (end - start) : Number.NaN;
}
