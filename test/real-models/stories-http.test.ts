// Needs ../shared/models (stories260K.gguf, llama-2-tiny-random.gguf); skipped without it, required in CI.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { realModel } from "../helpers/paths.js";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const random = realModel("llama-2-tiny-random.gguf");
/** Greedy continuation of "Once upon a time", 60 tokens, from MODELS.md. */
const GOLDEN =
  ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily";

let srv: TestServer;
before(async () => {
  if (stories.skip) return;
  srv = await startTestServer({ models: { stories260K: stories.path, random: random.path }, config: { contextSize: 2048 } });
});
after(() => srv?.cleanup());

const request = { model: "stories260K", prompt: "Once upon a time", max_tokens: 60, temperature: 0 };

test("stories260K greedy output is the golden continuation on every native route", { skip: stories.skip }, async () => {
  const whole = await postJson(`${srv.url}/inference`, request);
  assert.equal(whole.status, 200);
  assert.equal(whole.body.choices[0].text, GOLDEN);
  assert.deepEqual(whole.body.usage, { prompt_tokens: 5, completion_tokens: 60, total_tokens: 65 }); // BOS + 4 prompt tokens

  const res = await fetch(`${srv.url}/inference/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(request),
  });
  const events = await readSse(res);
  assert.equal(events.slice(0, -1).map((e) => e.token).join(""), GOLDEN);
  assert.equal(events.at(-1).finish_reason, "length");

  const perModel = await postJson(`${srv.url}/models/stories260K/inference`, { prompt: request.prompt, max_tokens: 60, temperature: 0 });
  assert.equal(perModel.body.text, GOLDEN);
  assert.equal(perModel.body.tokens_generated, 60);
});

test("stories260K: a stop string and eight concurrent streams", { skip: stories.skip }, async () => {
  const stopped = await postJson(`${srv.url}/inference`, { ...request, stop: ["park"] });
  assert.equal(stopped.body.choices[0].text, ", there was a little girl named Lily. She loved to play outside in the ");
  assert.equal(stopped.body.choices[0].finish_reason, "stop");
  const streams = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const res = await fetch(`${srv.url}/inference/stream`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(request),
      });
      return (await readSse(res)).slice(0, -1).map((e) => e.token).join("");
    }),
  );
  for (const s of streams) assert.equal(s, GOLDEN);
});

test("stories260K: seeded sampling reproduces; the prompt cache does not change results", { skip: stories.skip }, async () => {
  const body = { ...request, temperature: 0.9, seed: 1234, max_tokens: 40 };
  const a = await postJson(`${srv.url}/inference`, body);
  const b = await postJson(`${srv.url}/inference`, body);
  assert.equal(a.body.choices[0].text, b.body.choices[0].text);
  // A longer prompt sharing the prefix reuses cached tokens but must answer as a cold run would.
  const longer = { ...request, prompt: "Once upon a time, there was a little girl" };
  const warm = await postJson(`${srv.url}/inference`, longer);
  await postJson(`${srv.url}/models/stories260K/unload`, {});
  const cold = await postJson(`${srv.url}/inference`, longer);
  assert.equal(warm.body.choices[0].text, cold.body.choices[0].text);
});

test("llama-2-tiny-random: loads, generates, streams, embeds (dimension 8)", { skip: random.skip }, async () => {
  const gen = await postJson(`${srv.url}/inference`, { model: "random", prompt: "Hello", max_tokens: 16, temperature: 0 });
  assert.equal(gen.status, 200);
  assert.equal(gen.body.usage.completion_tokens, 16);
  const emb = await postJson(`${srv.url}/embeddings`, { model: "random", input: ["Hello world"] });
  assert.equal(emb.body.data[0].embedding.length, 8);
  const ctx = await postJson(`${srv.url}/inference`, { model: "random", prompt: "word ".repeat(3000), max_tokens: 4 });
  assert.equal(ctx.status, 400);
  assert.equal(ctx.body.error.code, "CONTEXT_LENGTH_EXCEEDED");
});
