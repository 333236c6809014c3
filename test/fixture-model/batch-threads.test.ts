// Needs no downloaded model: llama.cpp threads chosen per batch (src/runtimes/llama/batch-threads.ts) on the
// generated tiny llama, through node-llama-cpp's real batch loop.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { getLlama, LlamaLogLevel, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import { splitThreadsByBatch } from "../../src/runtimes/llama/batch-threads.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";

/** Greedy tokens, and the context's llama.cpp thread count seen after each one arrived. */
async function run(model: LlamaModel, context: LlamaContext, count: number): Promise<{ tokens: Token[]; threads: number[] }> {
  const sequence = context.getSequence();
  try {
    const input = model.tokenize("Once upon a time there was");
    if (model.tokens.bos !== null) input.unshift(model.tokens.bos);
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
  const dir = await mkdtemp(path.join(tmpdir(), "batch-threads-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const modelPath = path.join(dir, "tiny-llama.gguf");
  await writeTinyLlamaGguf(modelPath, { seed: 11 });
  const llama = await getLlama({ gpu: false, maxThreads: 2, logLevel: LlamaLogLevel.error });
  t.after(() => llama.dispose());
  const model = await llama.loadModel({ modelPath });

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
