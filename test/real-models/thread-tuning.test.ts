// Thread tuning at load (src/runtimes/llama/thread-tuning.ts) on stories260K, whose tokens take well under
// TUNE_BELOW_MS: the load measures each thread count, the model then runs on the fastest, the measuring leaves
// no trace in the counters or the sequences' output, and the load answer over HTTP says which counts it runs on
// and the stream interval that follows from them (streamIntervalMs auto: grouped when decoding takes every core).
// Needs ../shared/models (stories260K.gguf); skipped without it, required in CI.
import assert from "node:assert/strict";
import os from "node:os";
import { after, test } from "node:test";
import { collectGeneration, defaultSampling, type GenerateRequest } from "../../src/core/generation.js";
import { LlamaRuntime, type LlamaRuntimeConfig } from "../../src/runtimes/llama/llama-runtime.js";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { fewestNearFastest, threadCandidates } from "../../src/runtimes/llama/thread-tuning.js";
import { AUTO_STREAM_INTERVAL_MS } from "../../src/runtimes/llama/native-generation.js";
import type { LlamaContext } from "node-llama-cpp";
import { loopTotals, recordNativeLoops } from "../helpers/native-loops.js";
import { realModel } from "../helpers/paths.js";
import { postJson, readSse, startTestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const cores = os.availableParallelism();
const skip = stories.skip || (cores < 2 ? "one core: nothing to choose between" : false);
const quiet = { error() {}, warn() {}, info() {}, debug() {} };

function runtime(tuneThreads: boolean): LlamaRuntime {
  const config: LlamaRuntimeConfig = {
    gpu: "cpu", threads: cores, batchThreads: cores, tuneThreads, parallel: 4, contextSize: 256, batchSize: 256,
    gpuLayers: 0, queueSize: 16, queueTimeoutMs: 30_000, probeModels: false,
  };
  return new LlamaRuntime(config, quiet);
}

const greedy: GenerateRequest = { model: "stories260K", prompt: "Once upon a time", maxTokens: 40, stop: [], sampling: { ...defaultSampling, temperature: 0 } };
const generate = async (model: LlamaTextModel) => (await collectGeneration(await model.start(greedy, new AbortController().signal))).text;

test("a load measures each thread count and runs on the fastest; counters and output as without it", { skip }, async (t) => {
  const tuned = (await runtime(true).load(stories.path, {})) as LlamaTextModel;
  t.after(() => tuned.dispose());
  const tuning = tuned.threadTuning;
  assert.ok(tuning, "tuned");
  t.diagnostic(`measured: ${JSON.stringify(tuning)}`);
  assert.equal(tuning.skipped, undefined, "stories260K's tokens are fast enough to measure");
  const candidates = threadCandidates(cores);
  assert.deepEqual(Object.keys(tuning.oneStream).map(Number), candidates);
  assert.deepEqual(Object.keys(tuning.together).map(Number), candidates);
  for (const rate of [...Object.values(tuning.oneStream), ...Object.values(tuning.together)]) assert.ok(rate > 0);
  assert.equal(tuning.streams, 4, "as many streams as sequences, up to 8");
  assert.equal(tuning.one, fewestNearFastest(tuning.oneStream));
  assert.equal(tuning.many, fewestNearFastest(tuning.together));
  assert.equal(tuned.options.threads, tuning.one, "the model runs on what was picked");
  assert.equal(tuned.options.batch_threads, tuning.many);
  assert.equal(tuned.generatedTokens, 0, "the measuring is not counted");
  assert.deepEqual({ ...tuned.engineRuns }, { runs: 0, items: 0 });

  const plain = (await runtime(false).load(stories.path, {})) as LlamaTextModel;
  t.after(() => plain.dispose());
  assert.equal(plain.threadTuning, undefined, "tuneThreads false: nothing measured");
  assert.equal(plain.options.threads, cores);
  assert.equal(plain.options.batch_threads, cores);
  assert.ok(tuned.loadTimeMs > plain.loadTimeMs, `the measuring is part of the load time: ${tuned.loadTimeMs} vs ${plain.loadTimeMs} ms`);
  assert.equal(await generate(tuned), await generate(plain), "thread counts change speed, not tokens");
  assert.equal(tuned.generatedTokens, 40);
});

let server: Awaited<ReturnType<typeof startTestServer>> | undefined;
after(() => server?.cleanup());

test("over HTTP: with no thread settings a load answers the measured counts; with --threads it keeps them", { skip }, async () => {
  server = await startTestServer({ models: { stories260K: stories.path }, config: { threads: undefined } });
  const loaded = await postJson(`${server.url}/models/stories260K/load`, {});
  assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
  const { threads, batch_threads, stream_interval_ms } = loaded.body.options as { threads: number; batch_threads: number; stream_interval_ms: number };
  assert.ok(threadCandidates(cores).includes(threads) && threadCandidates(cores).includes(batch_threads), JSON.stringify(loaded.body.options));
  assert.equal(stream_interval_ms, threads >= cores ? AUTO_STREAM_INTERVAL_MS : 0, "the stream interval follows the measured count");
  const done = await postJson(`${server.url}/inference`, { model: "stories260K", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
  assert.equal(done.status, 200);
  assert.equal(done.body.usage.completion_tokens, 8);
  await server.cleanup();

  server = await startTestServer({ models: { stories260K: stories.path }, config: { threads: 1 } });
  const fixed = await postJson(`${server.url}/models/stories260K/load`, {});
  assert.equal(fixed.body.options.threads, 1);
  assert.equal(fixed.body.options.batch_threads, cores, "batchThreads keeps its default (every core)");
  assert.equal(fixed.body.options.stream_interval_ms, 0, "a core is free for the JS thread: each token at once");
});

test("with decoding on every core, a default server sends a stream's tokens in groups; with 0, each at once; the text is the same", { skip }, async (t) => {
  const body = { model: "stories260K", prompt: "Once upon a time", max_tokens: 120, temperature: 0, ignore_eos: true };
  const run = async (config: object) => {
    const srv = await startTestServer({ models: { stories260K: stories.path }, config: { threads: cores, ...config } });
    t.after(() => srv.cleanup());
    const load = await postJson(`${srv.url}/models/stories260K/load`, {});
    assert.equal(load.status, 200, JSON.stringify(load.body));
    const loops = recordNativeLoops((srv.app.registry.getLoaded("stories260K") as unknown as { context: LlamaContext }).context);
    const events = await fetch(`${srv.url}/inference/stream`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then(readSse);
    return { interval: load.body.options.stream_interval_ms, text: events.map((e: any) => e.token ?? "").join(""), loops, ...loopTotals(loops ?? []) };
  };
  const auto = await run({});
  const each = await run({ streamIntervalMs: 0 });
  assert.equal(each.interval, 0);
  assert.equal(auto.text, each.text);
  if (!auto.loops) {
    // No native loop in this addon (llama-native-loop.test.ts says so): nothing is grouped, and the options say so.
    assert.equal(auto.interval, 0);
    return;
  }
  assert.equal(auto.interval, AUTO_STREAM_INTERVAL_MS);
  t.diagnostic(`auto: ${auto.sampled} tokens in ${auto.deliveries} goes; 0: ${each.sampled} in ${each.deliveries}`);
  assert.ok(auto.sampled >= 110 && auto.deliveries * 2 <= auto.sampled, `grouped: ${auto.deliveries} goes for ${auto.sampled} tokens`);
  assert.equal(each.deliveries, each.sampled, "each token at once");
});
