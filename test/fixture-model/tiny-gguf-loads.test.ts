// Needs no downloaded model: loads the generated tiny llama (test/fixtures/gguf-writer.ts) with node-llama-cpp.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { getLlama, LlamaLogLevel, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import { TINY_LLAMA, writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";

async function greedy(model: LlamaModel, context: LlamaContext, prompt: string, count: number): Promise<Token[]> {
  const sequence = context.getSequence();
  try {
    const out: Token[] = [];
    const input = model.tokenize(prompt);
    if (model.tokens.bos !== null) input.unshift(model.tokens.bos);
    for await (const token of sequence.evaluate(input, { temperature: 0 })) {
      out.push(token);
      if (out.length >= count) break;
    }
    return out;
  } finally {
    sequence.dispose();
  }
}

test("the tiny llama fixture loads, tokenizes, generates deterministically and embeds", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "tiny-gguf-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const modelPath = path.join(dir, "tiny-llama.gguf");
  await writeTinyLlamaGguf(modelPath, { seed: 7 });

  // Threads are pinned to 1: on a 2-core machine the default count makes decoding hundreds of times slower.
  const llama = await getLlama({ gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error });
  t.after(() => llama.dispose());
  const model = await llama.loadModel({ modelPath });
  assert.equal(model.trainContextSize, 256);
  assert.equal(model.embeddingVectorSize, TINY_LLAMA.nEmbd);

  const text = "Hello world, once upon a time!";
  const tokens = model.tokenize(text);
  assert.ok(tokens.length > 0);
  assert.equal(model.detokenize(tokens), text);

  const context = await model.createContext({ threads: 1, contextSize: 128 });
  const first = await greedy(model, context, "once upon a time", 16);
  const second = await greedy(model, context, "once upon a time", 16);
  assert.equal(first.length, 16);
  assert.deepEqual(second, first);
  await context.dispose();

  const embedding = await model.createEmbeddingContext({ threads: 1, contextSize: 128 });
  const { vector } = await embedding.getEmbeddingFor("hello world");
  assert.equal(vector.length, TINY_LLAMA.nEmbd);
  assert.ok(vector.every(Number.isFinite));
  await embedding.dispose();
  await model.dispose();
});
