/**
 * Decode throughput of Inferno's /inference/stream against node-llama-cpp driven directly in this
 * process, on the same model, context and threads, reported as inferno/raw ratios.
 * Run: `npm run bench`, or `npx tsc -p . && node dist/bench/decode.js --help`.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import type { Llama, Token } from "node-llama-cpp";
import { parseBenchArgs, usage, type BenchOptions } from "./args.js";
import { startHttpFloor } from "./http-floor.js";
import { startInferno, type BenchServer } from "./inferno-server.js";
import { openLlama, RawLlama } from "./raw-llama.js";
import { formatReport, summarize, type BenchReport, type MachineFacts, type RateScenario, type SideSamples, type TtftScenario } from "./report.js";
import { streamConcurrently, streamInference } from "./sse-client.js";
import { aggregateRate, decodeRate, type StreamTiming } from "./stats.js";

/** Lets the side that just ran finish its cleanup (socket close, sequence release) before the other starts. */
const SETTLE_MS = 100;
/** A max_tokens 1 request leaves little to clean up. */
const TTFT_SETTLE_MS = 10;
/** Requests per side before TTFT is timed: short requests would otherwise time the JIT and connection setup. */
const TTFT_WARMUP = 10;
/** Shortest run the bench will size, however slow the backend: fewer tokens time too coarsely. */
const MIN_TOKENS = 16;

function nodeLlamaCppVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.resolve("node-llama-cpp")));
  while (dir !== path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "node-llama-cpp") return pkg.version ?? "unknown";
    }
    dir = path.dirname(dir);
  }
  return "unknown";
}

interface Measured<T> {
  value: T;
  /** Process CPU time (all threads, user + system) the run took, in microseconds. */
  cpuUs: number;
}

/** Runs the two sides one after the other, `n` times, swapping which goes first so that drift cancels. */
async function alternate<T>(
  n: number,
  raw: () => Promise<T>,
  inferno: () => Promise<T>,
  settleMs = SETTLE_MS,
): Promise<{ raw: Measured<T>[]; inferno: Measured<T>[] }> {
  const out = { raw: [] as Measured<T>[], inferno: [] as Measured<T>[] };
  for (let i = 0; i < n; i++) {
    const order = i % 2 === 0 ? (["raw", "inferno"] as const) : (["inferno", "raw"] as const);
    for (const side of order) {
      const before = process.cpuUsage();
      const value = await (side === "raw" ? raw() : inferno());
      const cpu = process.cpuUsage(before);
      out[side].push({ value, cpuUs: cpu.user + cpu.system });
      await sleep(settleMs);
    }
  }
  return out;
}

/** Rates, token counts and CPU per token of one side's runs. */
function sideSamples(runs: Measured<StreamTiming[]>[], rate: (batch: StreamTiming[]) => number): SideSamples {
  const tokens = runs.map((r) => r.value.reduce((sum, t) => sum + t.tokens, 0));
  return {
    rates: runs.map((r) => rate(r.value)),
    tokens,
    cpuUsPerToken: runs.map((r, i) => r.cpuUs / tokens[i]!),
  };
}

/**
 * Warms raw up with a full-length run stopped at --run-seconds, and returns the tokens per stream it
 * reached: the length of every measured run, so that a slow configuration (threads > 1 on few cores)
 * still ends in bounded time. Decode slows as the context fills, so a short probe would overestimate it.
 */
async function sizeRuns(opts: BenchOptions, label: string, probe: (deadlineMs: number) => Promise<StreamTiming[]>): Promise<number> {
  const reached = Math.min(...(await probe(performance.now() + opts.runSeconds * 1000)).map((t) => t.tokens));
  const tokens = Math.max(MIN_TOKENS, Math.min(opts.maxTokens, reached));
  if (tokens < opts.maxTokens) {
    console.error(`${label}: ${tokens} tokens per stream instead of ${opts.maxTokens}, to keep a run near ${opts.runSeconds} s (--run-seconds)`);
  }
  return tokens;
}

interface Pair {
  raw: RawLlama;
  server: BenchServer;
}

async function openPair(llama: Llama, opts: BenchOptions, parallel: number): Promise<Pair> {
  const ctx = { contextSize: opts.contextSize, threads: opts.threads, batchSize: opts.batchSize };
  const raw = await RawLlama.open(llama, opts.model, { ...ctx, sequences: parallel });
  try {
    return { raw, server: await startInferno({ ...ctx, modelPath: opts.model, parallel }) };
  } catch (err) {
    await raw.dispose();
    throw err;
  }
}

async function closePair(pair: Pair): Promise<void> {
  await pair.server.close();
  await pair.raw.dispose();
}

/** One stream at a time: median decode rate (first to last token) per side. */
async function singleStream(pair: Pair, opts: BenchOptions, prompt: Token[], name: string, parallel: number): Promise<RateScenario> {
  const maxTokens = await sizeRuns(opts, name, async (deadline) => [await pair.raw.generate(prompt, opts.maxTokens, 0, deadline)]);
  const req = { model: pair.server.modelId, prompt: opts.prompt, maxTokens };
  await streamInference(pair.server.url, req); // also loads the model
  const runs = await alternate(
    opts.runs,
    async () => [await pair.raw.generate(prompt, maxTokens)],
    async () => [await streamInference(pair.server.url, req)],
  );
  const rate = (batch: StreamTiming[]) => decodeRate(batch[0]!);
  return {
    name,
    measures:
      "tokens/s of one stream from its first to its last generated token, (n − 1) / (t_last − t_first); " +
      "raw: timed around the evaluate loop; inferno: timed client-side on the SSE token events over loopback, n from usage.completion_tokens",
    streams: 1,
    parallel,
    maxTokens,
    raw: sideSamples(runs.raw, rate),
    inferno: sideSamples(runs.inferno, rate),
  };
}

/** `streams` streams at once: aggregate tokens/s over the wall time of the whole batch. */
async function concurrentStreams(pair: Pair, opts: BenchOptions, prompt: Token[], name: string): Promise<RateScenario> {
  const streams = opts.streams;
  const maxTokens = await sizeRuns(opts, name, (deadline) => pair.raw.generateConcurrently(prompt, opts.maxTokens, streams, deadline));
  const req = { model: pair.server.modelId, prompt: opts.prompt, maxTokens };
  await streamConcurrently(pair.server.url, req, streams);
  const runs = await alternate(
    opts.runs,
    () => pair.raw.generateConcurrently(prompt, maxTokens, streams),
    () => streamConcurrently(pair.server.url, req, streams),
  );
  return {
    name,
    measures:
      `aggregate tokens/s of ${streams} concurrent streams: all generated tokens / (last stream's end − first stream's start), ` +
      "prefill and time to first token included; raw: one context with one sequence per stream, an evaluate loop on each under Promise.all; " +
      "inferno: concurrent fetches, end = the done event",
    streams,
    parallel: streams,
    maxTokens,
    raw: sideSamples(runs.raw, aggregateRate),
    inferno: sideSamples(runs.inferno, aggregateRate),
  };
}

async function timeToFirstToken(pair: Pair, opts: BenchOptions, prompt: Token[]): Promise<TtftScenario> {
  const req = { model: pair.server.modelId, prompt: opts.prompt, maxTokens: 1 };
  const ttft = (t: StreamTiming) => t.firstTokenMs - t.startMs;
  const floor = await startHttpFloor();
  try {
    const sides = {
      raw: async () => ttft(await pair.raw.generate(prompt, 1)),
      inferno: async () => ttft(await streamInference(pair.server.url, req)),
      floor: async () => ttft(await streamInference(floor.url, req)),
    };
    for (let i = 0; i < TTFT_WARMUP; i++) for (const side of Object.values(sides)) await side();
    const runs = await alternate(opts.ttftRequests, sides.raw, sides.inferno, TTFT_SETTLE_MS);
    const floorMs: number[] = [];
    for (let i = 0; i < opts.ttftRequests; i++) {
      floorMs.push(await sides.floor());
      await sleep(TTFT_SETTLE_MS);
    }
    return {
      name: "1 stream, max_tokens 1",
      measures:
        "milliseconds to the first generated token, the prompt's prefix already cached on both sides as Inferno reuses it; " +
        "raw: from the evaluate call; inferno: from fetch() to the first SSE token event, client-side over loopback; " +
        "http floor: the same fetch against a bare Fastify route that writes a fixed token event (no model, no validation)",
      requests: opts.ttftRequests,
      rawMs: runs.raw.map((r) => r.value),
      infernoMs: runs.inferno.map((r) => r.value),
      httpFloorMs: floorMs,
    };
  } finally {
    await floor.close();
  }
}

async function main(): Promise<void> {
  const parsed = parseBenchArgs(process.argv.slice(2));
  if (parsed === "help") {
    console.log(usage);
    return;
  }
  const opts: BenchOptions = { ...parsed, batchSize: Math.min(parsed.batchSize, parsed.contextSize) };
  if (!existsSync(opts.model)) throw new Error(`model not found: ${opts.model} (pass --model PATH)`);
  if (opts.threads >= os.availableParallelism()) {
    console.error(
      `warning: --threads ${opts.threads} on ${os.availableParallelism()} cores leaves none for the JS thread that drives each token; ` +
        "llama.cpp slows down badly (runs are shortened to --run-seconds)",
    );
  }
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  const llama = await openLlama(opts.threads);
  try {
    const rates: RateScenario[] = [];
    let pair = await openPair(llama, opts, 1);
    const prompt = pair.raw.tokenize(opts.prompt);
    let ttft: TtftScenario;
    try {
      rates.push(await singleStream(pair, opts, prompt, "1 stream, parallel 1", 1));
      ttft = await timeToFirstToken(pair, opts, prompt);
    } finally {
      await closePair(pair);
    }
    pair = await openPair(llama, opts, opts.streams);
    try {
      rates.push(await concurrentStreams(pair, opts, prompt, `${opts.streams} streams, parallel ${opts.streams}`));
      rates.push(await singleStream(pair, opts, prompt, `1 stream, parallel ${opts.streams}`, opts.streams));
    } finally {
      await closePair(pair);
    }
    const facts: MachineFacts = {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.availableParallelism(),
      node: process.version,
      nodeLlamaCpp: nodeLlamaCppVersion(),
      model: opts.model,
      modelBytes: statSync(opts.model).size,
      threads: opts.threads,
      contextSize: opts.contextSize,
      batchSize: opts.batchSize,
      prompt: opts.prompt,
      promptTokens: prompt.length,
      loadAverage: { start: loadAtStart, end: os.loadavg()[0] ?? 0 },
    };
    const report: BenchReport = { facts, runs: opts.runs, rates, ttft };
    console.log(formatReport(report));
    console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (opts.json) {
      await writeFile(opts.json, JSON.stringify({ ...report, summary: summarize(report) }, null, 2) + "\n");
      console.log(`wrote ${opts.json}`);
    }
  } finally {
    await llama.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
