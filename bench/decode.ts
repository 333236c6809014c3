/**
 * Decode throughput, time to first token, load curve and memory of Inferno's /inference/stream against
 * node-llama-cpp driven directly in this process, on the same model, context and threads, as ratios; and
 * bursts of N clients at once (served, refused with 503, anything else).
 * Run: `npm run bench` (`-- --quick` for a short run), or `node dist/bench/decode.js --help`.
 */
import { statSync, existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { Llama, Token } from "node-llama-cpp";
import { parseBenchArgs, usage, type BenchOptions } from "./args.js";
import { burstCurve } from "./burst.js";
import { clientCurve, threadCurve } from "./curves.js";
import { spawnServer } from "./inferno-server.js";
import { packageVersion } from "./onnx-machine.js";
import { alternate, closePair, openPair, sizeRuns, type Measured, type Pair } from "./pair.js";
import { openLlama, RawLlama } from "./raw-llama.js";
import { formatReport, summarize, type BenchReport, type MachineFacts, type RateScenario, type SideSamples, type TtftScenario } from "./report.js";
import { streamConcurrently } from "./sse-client.js";
import { aggregateRate, decodeRate, type StreamTiming } from "./stats.js";
import { rerunWithLlamaPool } from "./uv-pool.js";

/** A max_tokens 1 request leaves little to clean up. */
const TTFT_SETTLE_MS = 10;
/** Requests per side before TTFT is timed: short requests would otherwise time the JIT and connection setup. */
const TTFT_WARMUP = 10;

/** Rates, token counts and CPU per token of one side's runs. */
function sideSamples(runs: Measured<StreamTiming[]>[], rate: (batch: StreamTiming[]) => number): SideSamples {
  const tokens = runs.map((r) => r.value.reduce((sum, t) => sum + t.tokens, 0));
  return {
    rates: runs.map((r) => rate(r.value)),
    tokens,
    cpuUsPerToken: runs.map((r, i) => r.cpuUs / tokens[i]!),
  };
}

/** One stream at a time: median decode rate (first to last token) per side. */
async function singleStream(pair: Pair, opts: BenchOptions, prompt: Token[], name: string, parallel: number): Promise<RateScenario> {
  const maxTokens = await sizeRuns(opts, name, async (deadline) => [await pair.raw.generate(prompt, opts.maxTokens, 0, deadline)]);
  const req = { model: pair.server.modelId, prompt: opts.prompt, maxTokens };
  await pair.inferno.stream(req, 1); // also loads the model
  const runs = await alternate(
    opts.runs,
    async () => [await pair.raw.generate(prompt, maxTokens)],
    () => pair.inferno.stream(req, 1),
    pair.server,
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
  await pair.inferno.stream(req, streams);
  const runs = await alternate(
    opts.runs,
    () => pair.raw.generateConcurrently(prompt, maxTokens, streams),
    () => pair.inferno.stream(req, streams),
    pair.server,
  );
  return {
    name,
    measures:
      `aggregate tokens/s of ${streams} concurrent streams: all generated tokens / (last stream's end − first stream's start), ` +
      "prefill and time to first token included; raw: one context with one sequence per stream, an evaluate loop on each under Promise.all; " +
      "inferno: concurrent requests, end = the done event",
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
  const floor = await spawnServer({ kind: "floor" });
  try {
    const sides = {
      raw: async () => ttft(await pair.raw.generate(prompt, 1)),
      inferno: async () => ttft((await pair.inferno.stream(req, 1))[0]!),
      floor: async () => ttft((await (opts.client === "server" ? floor.stream(req, 1) : streamConcurrently(pair.agent, floor.url, req, 1)))[0]!),
    };
    for (let i = 0; i < TTFT_WARMUP; i++) for (const side of Object.values(sides)) await side();
    const runs = await alternate(opts.ttftRequests, sides.raw, sides.inferno, pair.server, TTFT_SETTLE_MS);
    const floorMs: number[] = [];
    for (let i = 0; i < opts.ttftRequests; i++) {
      floorMs.push(await sides.floor());
      await sleep(TTFT_SETTLE_MS);
    }
    return {
      name: "1 stream, max_tokens 1",
      measures:
        "milliseconds to the first generated token, the prompt's prefix already cached on both sides as Inferno reuses it; " +
        "raw: from the evaluate call; inferno: from the request to the first SSE token event, client-side over loopback (node:http); " +
        "http floor: the same request to a bare Fastify route that writes a fixed token event (no model, no validation), its client placed as Inferno's",
      requests: opts.ttftRequests,
      rawMs: runs.raw.map((r) => r.value),
      infernoMs: runs.inferno.map((r) => r.value),
      httpFloorMs: floorMs,
    };
  } finally {
    await floor.close();
  }
}

/** The prompt as both sides evaluate it (with BOS). */
async function promptTokens(llama: Llama, opts: BenchOptions): Promise<Token[]> {
  const raw = await RawLlama.open(llama, opts.model, { contextSize: opts.contextSize, sequences: 1, threads: opts.threads, batchSize: opts.batchSize });
  try {
    return raw.tokenize(opts.prompt);
  } finally {
    await raw.dispose();
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
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  const llama = await openLlama(Math.max(opts.threads, ...opts.threadList));
  try {
    const rates: RateScenario[] = [];
    const prompt = await promptTokens(llama, opts);
    let ttft: TtftScenario | undefined;
    if (opts.only.has("single") || opts.only.has("ttft")) {
      const pair = await openPair(llama, opts, 1);
      try {
        if (opts.only.has("single")) rates.push(await singleStream(pair, opts, prompt, "1 stream, parallel 1", 1));
        if (opts.only.has("ttft")) ttft = await timeToFirstToken(pair, opts, prompt);
      } finally {
        await closePair(pair);
      }
    }
    if (opts.only.has("streams")) {
      const pair = await openPair(llama, opts, opts.streams);
      try {
        rates.push(await concurrentStreams(pair, opts, prompt, `${opts.streams} streams, parallel ${opts.streams}`));
        if (!opts.quick) rates.push(await singleStream(pair, opts, prompt, `1 stream, parallel ${opts.streams}`, opts.streams));
      } finally {
        await closePair(pair);
      }
    }
    const clients = opts.only.has("clients") ? await clientCurve(llama, opts, prompt) : undefined;
    const threads = opts.only.has("threads") ? await threadCurve(llama, opts, prompt) : undefined;
    const bursts = opts.only.has("burst") ? await burstCurve(opts) : undefined;
    const facts: MachineFacts = {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.availableParallelism(),
      node: process.version,
      nodeLlamaCpp: packageVersion("node-llama-cpp"),
      model: opts.model,
      modelBytes: statSync(opts.model).size,
      threads: opts.threads,
      contextSize: opts.contextSize,
      batchSize: opts.batchSize,
      prompt: opts.prompt,
      promptTokens: prompt.length,
      loadAverage: { start: loadAtStart, end: os.loadavg()[0] ?? 0 },
      quick: opts.quick,
      client: opts.client,
    };
    const report: BenchReport = { facts, runs: opts.runs, rates, ttft, clients, threads, bursts };
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

if (!rerunWithLlamaPool()) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
