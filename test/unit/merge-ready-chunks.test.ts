// mergeReadyChunks (src/core/generation.ts): chunks already generated go out as one piece; a chunk whose next
// one is not there yet goes alone; the result, errors and logprob chunks come through unchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { mergeReadyChunks, type GenerationChunk, type GenerationResult, type GenerationStream } from "../../src/core/generation.js";

const result: GenerationResult = { text: "", finishReason: "length", promptTokens: 1, completionTokens: 0, cachedPromptTokens: 0, timeToFirstTokenMs: 0, totalMs: 0 };

/** A stream of `texts`, waiting `gapMs` before the chunks whose index is in `gaps` (none: all at once). */
async function* chunks(texts: string[], gaps: number[] = [], extra: Partial<GenerationChunk> = {}): GenerationStream {
  for (const [index, text] of texts.entries()) {
    if (gaps.includes(index)) await sleep(20);
    yield { text, index, ...extra };
  }
  return { ...result, text: texts.join(""), completionTokens: texts.length };
}

async function drain(stream: AsyncGenerator<GenerationChunk, GenerationResult, void>): Promise<{ pieces: string[]; result: GenerationResult }> {
  const pieces: string[] = [];
  for (;;) {
    const step = await stream.next();
    if (step.done) return { pieces, result: step.value };
    pieces.push(step.value.text);
  }
}

test("chunks that are there together go as one piece; a wait starts a new piece", async () => {
  const out = await drain(mergeReadyChunks(chunks(["a", "b", "c", "d", "e"], [3])));
  assert.deepEqual(out.pieces, ["abc", "de"]);
  assert.equal(out.result.completionTokens, 5);
});

test("at most maxChunks chunks in a piece", async () => {
  const texts = Array.from({ length: 10 }, (_, i) => String(i));
  const out = await drain(mergeReadyChunks(chunks(texts), 4));
  assert.deepEqual(out.pieces, ["0123", "4567", "89"]);
});

test("chunks that come one at a time go one at a time", async () => {
  const out = await drain(mergeReadyChunks(chunks(["a", "b", "c"], [1, 2])));
  assert.deepEqual(out.pieces, ["a", "b", "c"]);
});

test("chunks with logprobs are never merged", async () => {
  const out = await drain(mergeReadyChunks(chunks(["a", "b", "c"], [], { logprobs: [] })));
  assert.deepEqual(out.pieces, ["a", "b", "c"]);
});

test("an error of the stream comes through, after the text before it", async () => {
  async function* failing(): GenerationStream {
    yield { text: "a", index: 0 };
    yield { text: "b", index: 1 };
    throw new Error("decode failed");
  }
  const merged = mergeReadyChunks(failing());
  const first = await merged.next();
  assert.deepEqual(first, { done: false, value: { text: "ab", index: 0 } });
  await assert.rejects(merged.next(), /decode failed/);
});
