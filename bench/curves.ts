import { setTimeout as sleep } from "node:timers/promises";
import type { Llama, Token } from "node-llama-cpp";
import type { BenchOptions } from "./args.js";
import { closedLoop } from "./closed-loop.js";
import { alternate, closePair, openPair, sizeRuns, SETTLE_MS } from "./pair.js";
import type { ClientCurve, ClientPoint, ThreadCurve, ThreadPoint } from "./report.js";
import { decodeRate, type StreamTiming } from "./stats.js";

/**
 * 1 to 64 closed-loop clients against a server with `parallel` sequences (the rest wait in its queue); the
 * raw ceiling is min(clients, parallel) back-to-back evaluate loops on a context with as many sequences.
 * Also reads the server's RSS idle, with the model loaded, and after the curve.
 */
export async function clientCurve(llama: Llama, opts: BenchOptions, prompt: Token[]): Promise<ClientCurve> {
  const parallel = opts.parallel;
  const windowMs = opts.curveSeconds * 1000;
  const pair = await openPair(llama, opts, parallel);
  try {
    const idleRss = (await pair.server.stats()).rss;
    const req = { model: pair.server.modelId, prompt: opts.prompt, maxTokens: opts.curveTokens };
    await pair.inferno.stream(req, parallel); // loads the model and warms every sequence
    const loadedRss = (await pair.server.stats()).rss;
    await pair.raw.generateConcurrently(prompt, opts.curveTokens, parallel);
    const points: ClientPoint[] = opts.clients.map((clients) => ({ clients, rawRates: [], infernoRates: [], errors: [], ttftMs: [] }));
    const raw = (client: number, _signal: AbortSignal, onToken: (now: number) => void, deadline: number) =>
      pair.raw.generate(prompt, opts.curveTokens, client, deadline, onToken);
    for (let run = 0; run < opts.curveRuns; run++) {
      const rawRates = new Map<number, number>();
      for (const point of points) {
        const streams = Math.min(point.clients, parallel);
        if (!rawRates.has(streams)) {
          rawRates.set(streams, (await closedLoop(streams, windowMs, raw)).rate);
          await sleep(SETTLE_MS);
        }
        point.rawRates.push(rawRates.get(streams)!);
        const result = await pair.inferno.loop(req, point.clients, windowMs);
        point.infernoRates.push(result.rate);
        point.errors.push(...result.errors);
        point.ttftMs.push(...result.ttftMs);
        await sleep(SETTLE_MS);
      }
    }
    const afterRss = (await pair.server.stats()).rss;
    return {
      parallel, tokensPerRequest: opts.curveTokens, windowSeconds: opts.curveSeconds, runs: opts.curveRuns, points,
      rss: { idle: idleRss, loaded: loadedRss, afterCurve: afterRss },
    };
  } finally {
    await closePair(pair);
  }
}

/** Decode tokens/s of concurrent streams, prefill left out: Σ(tokens − 1) over first token to last token. */
function decodeAggregateRate(batch: readonly StreamTiming[]): number {
  if (batch.length === 1) return decodeRate(batch[0]!);
  const first = Math.min(...batch.map((t) => t.firstTokenMs));
  const last = Math.max(...batch.map((t) => t.lastTokenMs));
  const intervals = batch.reduce((sum, t) => sum + Math.max(0, t.tokens - 1), 0);
  return last > first ? (intervals * 1000) / (last - first) : Number.NaN;
}

/**
 * Decode rate at each llama.cpp thread count, one stream and `streams` streams, raw and through Inferno.
 * A slow count is cut to what raw reaches in --run-seconds and measured once.
 */
export async function threadCurve(llama: Llama, opts: BenchOptions, prompt: Token[]): Promise<ThreadCurve> {
  const points: ThreadPoint[] = [];
  for (const threads of opts.threadList) {
    const pair = await openPair(llama, opts, opts.streams, threads);
    try {
      for (const streams of [1, opts.streams]) {
        const label = `thread curve, ${threads} threads, ${streams} streams`;
        const probe = (deadline: number) => pair.raw.generateConcurrently(prompt, opts.threadTokens, streams, deadline);
        const tokens = await sizeRuns({ ...opts, maxTokens: opts.threadTokens }, label, probe, 2);
        const req = { model: pair.server.modelId, prompt: opts.prompt, maxTokens: tokens };
        await pair.inferno.stream(req, streams);
        const runs = await alternate(
          tokens < opts.threadTokens ? 1 : opts.threadRuns,
          () => pair.raw.generateConcurrently(prompt, tokens, streams),
          () => pair.inferno.stream(req, streams),
          pair.server,
        );
        points.push({
          threads,
          streams,
          tokens,
          rawRates: runs.raw.map((r) => decodeAggregateRate(r.value)),
          infernoRates: runs.inferno.map((r) => decodeAggregateRate(r.value)),
        });
      }
    } finally {
      await closePair(pair);
    }
  }
  return { points };
}
