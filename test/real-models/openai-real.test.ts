// Needs ../shared/models/stories260K.gguf; skipped without it, required in CI.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { realModel } from "../helpers/paths.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
/** Greedy continuation of "Once upon a time", 60 tokens, from MODELS.md. */
const GOLDEN =
  ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily";

let srv: TestServer;
let client: OpenAI;
before(async () => {
  if (stories.skip) return;
  srv = await startTestServer({ models: { stories260K: stories.path }, config: { contextSize: 2048 } });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(() => srv?.cleanup());

const request = { model: "stories260K", prompt: "Once upon a time", max_tokens: 60, temperature: 0 };

test("stories260K: /v1/completions gives the golden continuation, whole and streamed", { skip: stories.skip }, async () => {
  const whole = await client.completions.create(request);
  assert.equal(whole.choices[0]!.text, GOLDEN);
  assert.equal(whole.choices[0]!.finish_reason, "length");
  assert.deepEqual(whole.usage, { prompt_tokens: 5, completion_tokens: 60, total_tokens: 65 }); // BOS + 4 prompt tokens

  const stream = await client.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices.map((c) => c.text).join("");
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, GOLDEN);
  assert.deepEqual(usage, { prompt_tokens: 5, completion_tokens: 60, total_tokens: 65 });
});

test("stories260K: echo and a stop string", { skip: stories.skip }, async () => {
  const echoed = await client.completions.create({ ...request, echo: true, stop: ["park"] });
  assert.equal(echoed.choices[0]!.text, "Once upon a time, there was a little girl named Lily. She loved to play outside in the ");
  assert.equal(echoed.choices[0]!.finish_reason, "stop");
  // Token ids of "Once upon a time" (BOS first), as MODELS.md lists them.
  const byTokens = await client.completions.create({ ...request, prompt: [1, 403, 407, 261, 378], echo: true, max_tokens: 8 });
  assert.equal(byTokens.choices[0]!.text, "Once upon a time" + GOLDEN.slice(0, byTokens.choices[0]!.text.length - 16));
});
