// Pure logic: mapGeneration, the iterator every streaming dialect reads a generation through (src/core/stream-utils.ts).
// Whichever way the reader's loop ends (the generation's end, the reader leaving, an error from the generation or
// from a mapping function), the generation is returned exactly once, since returning it frees its sequence.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationChunk, GenerationResult, GenerationStream } from "../../src/core/generation.js";
import { mapGeneration } from "../../src/core/stream-utils.js";

const RESULT: GenerationResult = {
  text: "abc",
  finishReason: "length",
  promptTokens: 2,
  completionTokens: 3,
  cachedPromptTokens: 0,
  timeToFirstTokenMs: 1,
  totalMs: 2,
};

/** A generation of `texts`, then RESULT (or `failAt`: an error instead of that chunk), counting its returns. */
function generation(texts: string[], failAt = -1): { stream: GenerationStream; returns: () => number } {
  let returns = 0;
  async function* run(): GenerationStream {
    try {
      for (const [index, text] of texts.entries()) {
        await Promise.resolve();
        if (index === failAt) throw new Error("decode failed");
        yield { text, index };
      }
      return RESULT;
    } finally {
      returns++;
    }
  }
  return { stream: run(), returns: () => returns };
}

const mapped = (stream: GenerationStream, onChunk: (c: GenerationChunk) => string | undefined = (c) => `chunk ${c.text}`) =>
  mapGeneration<string>(stream, onChunk, (r) => [`done ${r.completionTokens}`, "[DONE]"]);

test("every chunk, then every event of the end, in order; the generation returned once", async () => {
  const g = generation(["a", "b", "c"]);
  const seen: string[] = [];
  for await (const event of mapped(g.stream)) seen.push(event);
  assert.deepEqual(seen, ["chunk a", "chunk b", "chunk c", "done 3", "[DONE]"]);
  assert.equal(g.returns(), 1);
});

test("a chunk mapped to undefined is skipped", async () => {
  const g = generation(["a", "", "", "b"]);
  const seen: string[] = [];
  for await (const event of mapped(g.stream, (c) => (c.text ? c.text : undefined))) seen.push(event);
  assert.deepEqual(seen, ["a", "b", "done 3", "[DONE]"]);
});

test("a reader that leaves returns the generation, and the iterator is done from then on", async () => {
  const g = generation(["a", "b", "c"]);
  const events = mapped(g.stream);
  for await (const event of events) {
    assert.equal(event, "chunk a");
    break;
  }
  assert.equal(g.returns(), 1);
  assert.deepEqual(await events.next(), { done: true, value: undefined });
  await events.return(undefined);
  assert.equal(g.returns(), 1);
});

test("a reader that leaves during the end's events still returns the generation once", async () => {
  const g = generation(["a"]);
  const seen: string[] = [];
  for await (const event of mapped(g.stream)) {
    seen.push(event);
    if (event === "done 3") break;
  }
  assert.deepEqual(seen, ["chunk a", "done 3"]);
  assert.equal(g.returns(), 1);
});

test("an error from the generation reaches the reader, with the generation returned", async () => {
  const g = generation(["a", "b", "c"], 1);
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const event of mapped(g.stream)) seen.push(event);
  }, /decode failed/);
  assert.deepEqual(seen, ["chunk a"]);
  assert.equal(g.returns(), 1);
});

test("an error thrown while mapping a chunk or the end returns the generation", async () => {
  const g = generation(["a", "b"]);
  const events = mapGeneration<string>(
    g.stream,
    (c) => {
      if (c.text === "b") throw new Error("cannot map b");
      return c.text;
    },
    () => [],
  );
  assert.deepEqual(await events.next(), { done: false, value: "a" });
  await assert.rejects(events.next(), /cannot map b/);
  assert.equal(g.returns(), 1);

  const h = generation(["a"]);
  const ending = mapGeneration<string>(h.stream, (c) => c.text, () => {
    throw new Error("cannot map the end");
  });
  assert.deepEqual(await ending.next(), { done: false, value: "a" });
  await assert.rejects(ending.next(), /cannot map the end/);
  assert.equal(h.returns(), 1);
});

test("yield* of it from an async generator passes every event and the return on", async () => {
  const g = generation(["a", "b", "c"]);
  async function* outer(): AsyncGenerator<string, void, void> {
    yield "head";
    yield* mapped(g.stream);
  }
  const seen: string[] = [];
  for await (const event of outer()) {
    seen.push(event);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, ["head", "chunk a", "chunk b"]);
  assert.equal(g.returns(), 1);
});
