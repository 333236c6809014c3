import { collectGeneration, defaultSampling, type GenerateRequest, type GenerationStream } from "../../core/generation.js";
import type { ThreadCaps } from "./batch-threads.js";

/**
 * A model whose one-stream tokens take longer than this at every core is not measured: the thread barriers
 * of a graph cost microseconds, which only matter beside a small model's work. On a 2-core AMD EPYC guest,
 * stories260K (0.3 ms a token) ran 1.6x faster on 1 thread than on 2, and the 85M bench model (4 ms) as fast
 * or faster on 2 (README, Threads).
 */
export const TUNE_BELOW_MS = 2;
/**
 * Nor is a model whose weights are larger than this: each token reads them all, which takes longer than
 * TUNE_BELOW_MS at any memory bandwidth a CPU has. Such a load costs no measuring at all.
 */
export const TUNE_MAX_WEIGHT_BYTES = 256 * 2 ** 20;

/** The generated tokens of each measured request (of the first two, which decide whether to go on), and how many times each candidate is measured. */
const TOKENS = 32;
const FIRST_TOKENS = 8;
const ROUNDS = 3;
/**
 * More threads are kept only when this much faster than fewer. The measuring runs no HTTP, no clients: when a
 * model serves, its JS thread and often its clients want a core too, which a thread llama.cpp spins on takes
 * from them (stories260K on 2 cores, 8 streams at 1 thread against 2: 0.5–1.0x in-process, 1.07–1.35x through
 * HTTP with the clients on the same machine, in runs minutes apart). Measurements also scatter by a few per cent.
 */
const MARGIN = 1.05;

/** What tuning needs of a loaded model. */
export interface Tunable {
  start(req: GenerateRequest, signal: AbortSignal): Promise<GenerationStream>;
  readonly parallel: number;
  /** Bytes of weights a token reads. */
  readonly weightBytes: number;
}

export interface ThreadTuning {
  /** Threads for one-token batches, and for batches of up to `manyUpTo` tokens, as set on the caps. */
  one: number;
  many: number;
  manyUpTo: number;
  /** Decode tokens/s of each candidate thread count (best of its rounds): one stream, and `streams` at once. */
  oneStream: Record<number, number>;
  together: Record<number, number>;
  streams: number;
  /** Why nothing was measured beyond the first request, when that is so. */
  skipped?: string;
}

/** 1, 2, 4, ... below `cores`, then `cores`. */
export function threadCandidates(cores: number): number[] {
  const list: number[] = [];
  for (let n = 1; n < cores; n *= 2) list.push(n);
  list.push(cores);
  return list;
}

/** The fewest threads whose rate is within the margin of the highest. */
export function fewestNearFastest(rates: Record<number, number>): number {
  const top = Math.max(...Object.values(rates));
  const near = Object.keys(rates).map(Number).filter((n) => rates[n]! * MARGIN >= top);
  return Math.min(...near);
}

/**
 * Picks the llama.cpp thread counts of a model on the CPU by measuring them, the way `threads: auto`
 * should mean "fastest": greedy generations of a short prompt, one stream with each candidate count for
 * one-token batches, then `min(parallel, 8)` streams at once with each count for batches of up to `parallel`
 * tokens (a token of each sequence); larger batches (prompts) keep every thread. Leaves the caps at the
 * fewest threads within 5% of the fastest, and returns what it measured.
 */
export async function tuneThreads(model: Tunable, caps: ThreadCaps, cores: number, signal: AbortSignal): Promise<ThreadTuning> {
  const candidates = threadCandidates(Math.max(caps.one, caps.many)).filter((n) => n <= cores);
  const req = (i: number, maxTokens: number): GenerateRequest => ({
    model: "thread-tuning",
    // Distinct prompts per stream, so each decodes on its own sequence rather than reusing another's cache.
    prompt: `Once upon a time ${i}`,
    maxTokens,
    stop: [],
    sampling: { ...defaultSampling, temperature: 0 },
    ignoreEos: true,
  });
  /** Decode tokens/s of `streams` concurrent generations. */
  const measure = async (streams: number, maxTokens = TOKENS): Promise<number> => {
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: streams }, async (_, i) => collectGeneration(await model.start(req(i, maxTokens), signal))),
    );
    const firstTokens = Math.max(...results.map((r) => r.timeToFirstTokenMs));
    const tokens = results.reduce((n, r) => n + r.completionTokens - 1, 0);
    return (tokens * 1000) / Math.max(1e-3, performance.now() - started - firstTokens);
  };
  const oneStream: Record<number, number> = {};
  const together: Record<number, number> = {};
  const streams = Math.min(model.parallel, 8);
  const result = (skipped?: string): ThreadTuning => ({
    one: caps.one, many: caps.many, manyUpTo: caps.manyUpTo, oneStream, together, streams, ...(skipped ? { skipped } : {}),
  });

  if (candidates.length < 2) return result("one core");
  if (model.weightBytes > TUNE_MAX_WEIGHT_BYTES) return result(`weights of ${(model.weightBytes / 2 ** 20).toFixed(0)} MiB`);
  await measure(1, FIRST_TOKENS / 2); // warm-up: the prompt's cache, the first graph
  const ms = 1000 / (await measure(1, FIRST_TOKENS));
  if (ms > TUNE_BELOW_MS) return result(`a token takes ${ms.toFixed(2)} ms`);

  const best = async (rates: Record<number, number>, set: (n: number) => void, count: number) => {
    for (let round = 0; round < ROUNDS; round++) {
      for (const n of candidates) {
        set(n);
        rates[n] = Math.max(rates[n] ?? 0, await measure(count));
      }
    }
    set(fewestNearFastest(rates));
  };
  await best(oneStream, (n) => (caps.one = n), 1);
  if (streams > 1) {
    caps.manyUpTo = model.parallel;
    await best(together, (n) => (caps.many = n), streams);
  }
  return result();
}
