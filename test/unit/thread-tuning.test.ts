// The choice thread-tuning.ts makes from its measurements, and when it measures at all. What it measures on a
// real model is tested in test/real-models/thread-tuning.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { GenerateRequest, GenerationResult, GenerationStream } from "../../src/core/generation.js";
import { fewestNearFastest, threadCandidates, tuneThreads, type Tunable } from "../../src/runtimes/llama/thread-tuning.js";

/** A model whose every generation reports `msPerToken` at whatever threads are set: no real decode. */
function steady(msPerToken: number, parallel = 4, weightBytes = 2 ** 20): Tunable & { requests: GenerateRequest[] } {
  const requests: GenerateRequest[] = [];
  return {
    parallel,
    weightBytes,
    requests,
    start(req: GenerateRequest): Promise<GenerationStream> {
      requests.push(req);
      const result: GenerationResult = {
        text: "", finishReason: "length", promptTokens: 4, completionTokens: req.maxTokens, cachedPromptTokens: 0,
        timeToFirstTokenMs: 0, totalMs: msPerToken * req.maxTokens,
      };
      // Takes the time it reports, so the tuner's own clock agrees.
      return Promise.resolve(
        (async function* () {
          await new Promise((r) => setTimeout(r, msPerToken * req.maxTokens));
          return result;
        })(),
      );
    },
  };
}

describe("thread tuning", () => {
  it("candidates: powers of two below the cores, then the cores", () => {
    assert.deepEqual(threadCandidates(1), [1]);
    assert.deepEqual(threadCandidates(2), [1, 2]);
    assert.deepEqual(threadCandidates(6), [1, 2, 4, 6]);
    assert.deepEqual(threadCandidates(8), [1, 2, 4, 8]);
  });

  it("picks the fewest threads within 5% of the fastest", () => {
    assert.equal(fewestNearFastest({ 1: 100, 2: 104 }), 1, "4% does not earn a core");
    assert.equal(fewestNearFastest({ 1: 100, 2: 110 }), 2);
    assert.equal(fewestNearFastest({ 1: 110, 2: 100 }), 1);
    assert.equal(fewestNearFastest({ 1: 100, 2: 90, 4: 120 }), 4);
    assert.equal(fewestNearFastest({ 1: 130, 2: 140, 4: 142 }), 2);
    assert.equal(fewestNearFastest({ 1: 100, 2: 200 }), 2);
  });

  it("does not measure a model whose tokens are slow, and leaves its threads alone", async () => {
    const model = steady(5);
    const caps = { one: 2, many: 2, manyUpTo: Infinity };
    const tuning = await tuneThreads(model, caps, 2, new AbortController().signal);
    assert.match(tuning.skipped ?? "", /a token takes 5\.\d\d ms/);
    assert.deepEqual({ one: caps.one, many: caps.many }, { one: 2, many: 2 });
    assert.equal(model.requests.length, 2, "a warm-up and one measured request");
    assert.ok(model.requests.every((r) => r.ignoreEos && r.sampling.temperature === 0), "greedy, fixed-length requests");
  });

  it("a model with large weights costs no request at all", async () => {
    const model = steady(0.05, 4, 300 * 2 ** 20);
    const tuning = await tuneThreads(model, { one: 2, many: 2, manyUpTo: Infinity }, 2, new AbortController().signal);
    assert.equal(tuning.skipped, "weights of 300 MiB");
    assert.equal(model.requests.length, 0);
  });

  it("a fast model: each candidate measured alone and in streams; prompts keep every thread", async () => {
    const model = steady(0.05, 4);
    const caps = { one: 2, many: 2, manyUpTo: Infinity };
    const tuning = await tuneThreads(model, caps, 2, new AbortController().signal);
    assert.equal(tuning.skipped, undefined);
    assert.deepEqual(Object.keys(tuning.oneStream), ["1", "2"]);
    assert.deepEqual(Object.keys(tuning.together), ["1", "2"]);
    assert.equal(tuning.streams, 4);
    assert.equal(caps.manyUpTo, 4, "the tuned count covers a token per sequence, no more");
    assert.equal(new Set(model.requests.map((r) => r.prompt)).size, 4, "a prompt per stream, each on its own sequence");
  });

  it("on one core there is nothing to choose", async () => {
    const caps = { one: 1, many: 1, manyUpTo: Infinity };
    assert.equal((await tuneThreads(steady(0.05), caps, 1, new AbortController().signal)).skipped, "one core");
  });

  it("an abort stops it", async () => {
    const controller = new AbortController();
    const model = steady(0.05);
    const start = model.start.bind(model);
    model.start = (req, signal) => {
      if (model.requests.length === 3) controller.abort(new Error("unloaded"));
      signal.throwIfAborted();
      return start(req, signal);
    };
    await assert.rejects(tuneThreads(model, { one: 2, many: 2, manyUpTo: Infinity }, 2, controller.signal), /unloaded/);
  });
});
