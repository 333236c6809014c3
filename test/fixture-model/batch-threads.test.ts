// Needs no downloaded model: llama.cpp threads chosen per batch (src/runtimes/llama/batch-threads.ts),
// batches in sequence order (batch-order.ts) and a batch's sequences sampled in one call (batch-sampling.ts)
// on the generated tiny llama, through node-llama-cpp's real batch loop.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { sequenceOrderStrategy } from "../../src/runtimes/llama/batch-order.js";
import { sampleTogether } from "../../src/runtimes/llama/batch-sampling.js";
import { splitThreadsByBatch } from "../../src/runtimes/llama/batch-threads.js";
import { eachAlone, greedyTokens, promptTokens, tinyModel } from "../helpers/tiny-llama.js";

/** Greedy tokens, and the context's llama.cpp thread count seen after each one arrived. */
async function run(model: LlamaModel, context: LlamaContext, count: number): Promise<{ tokens: Token[]; threads: number[] }> {
  const sequence = context.getSequence();
  try {
    const input = promptTokens(model, "Once upon a time there was");
    const tokens: Token[] = [];
    const threads: number[] = [];
    for await (const token of sequence.evaluate(input, { temperature: 0 })) {
      tokens.push(token);
      threads.push(context.currentThreads);
      if (tokens.length >= count) break;
    }
    return { tokens, threads };
  } finally {
    sequence.dispose();
  }
}

test("one-token decodes run on the decode threads, prompts on the batch threads, with the same tokens", async (t) => {
  const model = await tinyModel(t, 11, 2);

  const plain = await model.createContext({ contextSize: 128, threads: 2 });
  const expected = await run(model, plain, 6);
  await plain.dispose();
  assert.deepEqual(new Set(expected.threads), new Set([2]), "without the split every decode uses the context's threads");

  const split = await model.createContext({ contextSize: 128, threads: 2 });
  t.after(() => split.dispose());
  splitThreadsByBatch(split, 1);
  const got = await run(model, split, 6);
  // The first token comes from the prompt's batch; every later one from a one-token decode.
  assert.deepEqual(got.threads, [2, 1, 1, 1, 1, 1]);
  assert.deepEqual(got.tokens, expected.tokens, "the split changes threads, not results");
});

test("batches go to llama.cpp in sequence-id order, and concurrent streams give what they give alone", async (t) => {
  const model = await tinyModel(t, 5, 1);
  const prompts = ["Once upon a time", "The cat", "Hello world, said the", "A"];
  const greedy = (sequence: LlamaContextSequence, prompt: string) => greedyTokens(model, sequence, prompt, 12);
  const expected = await eachAlone(model, prompts, 128, 12);

  let context: LlamaContext | undefined;
  const strategy = sequenceOrderStrategy(() => context);
  const batches: number[][] = [];
  context = await model.createContext({
    contextSize: 128,
    sequences: prompts.length,
    threads: 1,
    batching: {
      itemPrioritizationStrategy: (args) => {
        const queued = (context as unknown as { _queuedDecodes: Array<{ tokens: unknown; sequenceId: number }> })._queuedDecodes;
        const res = strategy(args);
        batches.push(res.map((r) => queued.find((q) => q.tokens === r.item.tokens)!.sequenceId));
        return res;
      },
    },
  });
  t.after(() => context!.dispose());
  const sequences = prompts.map(() => context!.getSequence());
  // Started in reverse, so node-llama-cpp's own queue order is the opposite of the ids.
  const got = await Promise.all([...sequences.keys()].reverse().map(async (i) => [i, await greedy(sequences[i]!, prompts[i]!)] as const));
  for (const [i, tokens] of got) assert.deepEqual(tokens, expected[i], `sequence ${i}`);
  assert.ok(batches.some((b) => b.length === prompts.length), `some batch carries every sequence: ${JSON.stringify(batches)}`);
  for (const b of batches) assert.deepEqual(b, [...b].sort((x, y) => x - y), `batch in id order: ${JSON.stringify(b)}`);
});

test("the batch strategy shares a batch as node-llama-cpp's maximumParallelism does", () => {
  const strategy = sequenceOrderStrategy(() => undefined);
  const long = { tokens: Array.from({ length: 600 }, (_, i) => i as Token), logits: [], evaluationPriority: 5 as const };
  const short = { tokens: [1 as Token], logits: [], evaluationPriority: 5 as const };
  const res = strategy({ items: [long, short], size: 512 });
  assert.deepEqual(res.map((r) => [r.item, r.processAmount]), [[long, 511], [short, 1]]);
});

test("a batch's sequences are sampled in one call to the addon, each getting the tokens it gets alone", async (t) => {
  const model = await tinyModel(t, 9, 1);
  const prompts = ["Once upon a time", "The cat", "Hello world", "A"];
  const expected = await eachAlone(model, prompts, 256, 24);

  const context = await model.createContext({ contextSize: 256, sequences: prompts.length, threads: 1 });
  t.after(() => context.dispose());
  const native = (context as unknown as { _ctx: { sampleTokens?: (i: number[], s: unknown[]) => Promise<unknown[]> } })._ctx;
  if (typeof native.sampleTokens !== "function") {
    // The patched addon (scripts/build-llama-addon.sh) has it; CI builds it and must not skip.
    assert.notEqual(process.env.CI, "true", "the addon has no sampleTokens: patches/node-llama-cpp-sample-tokens.patch is not built in");
    t.skip("the addon has no sampleTokens (npm run build:llama-addon)");
    return;
  }
  const groups: number[] = [];
  const sampleTokens = native.sampleTokens.bind(native);
  (context as unknown as { _ctx: unknown })._ctx = new Proxy(native, {
    get: (target, key) => {
      if (key === "sampleTokens") return (i: number[], s: unknown[]) => (groups.push(i.length), sampleTokens(i, s));
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  sampleTogether(context);
  const sequences = prompts.map(() => context.getSequence());
  const got = await Promise.all(sequences.map((sequence, i) => greedyTokens(model, sequence, prompts[i]!, 24)));
  got.forEach((tokens, i) => assert.deepEqual(tokens, expected[i], `sequence ${i}`));
  const full = groups.filter((n) => n === prompts.length).length;
  t.diagnostic(`sampleTokens calls by size: ${JSON.stringify(groups)}`);
  assert.ok(full >= 20, `most steps sample all ${prompts.length} sequences in one call: ${JSON.stringify(groups)}`);
  // A request for probabilities takes the one-at-a-time path and still gets its tokens.
  const before = groups.length;
  await sequences[0]!.clearHistory();
  const withProbabilities = await greedyTokens(model, sequences[0]!, prompts[0]!, 5, true);
  assert.deepEqual(withProbabilities, expected[0]!.slice(0, 5));
  assert.equal(groups.length, before, "probabilities are not asked through sampleTokens");
});
