// Needs ../shared/models/stories260K.gguf; skipped without it, required in CI.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ollama } from "ollama";
import { realModel } from "../helpers/paths.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
/** Greedy continuation of "Once upon a time", 60 tokens, from MODELS.md. */
const GOLDEN =
  ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily";

let srv: TestServer;
let ollama: Ollama;
before(async () => {
  if (stories.skip) return;
  srv = await startTestServer({ models: { stories260K: stories.path }, config: { contextSize: 2048 } });
  ollama = new Ollama({ host: srv.url });
});
after(() => srv?.cleanup());

const request = { model: "stories260K", prompt: "Once upon a time", raw: true, options: { temperature: 0, num_predict: 60 } };

test("stories260K: raw /api/generate gives the golden continuation, streamed and not", { skip: stories.skip }, async () => {
  const whole = await ollama.generate(request);
  assert.equal(whole.response, GOLDEN);
  assert.equal(whole.prompt_eval_count, 5); // BOS + 4 prompt tokens
  assert.equal(whole.eval_count, 60);
  assert.equal(whole.done_reason, "length");

  let text = "";
  let last;
  for await (const part of await ollama.generate({ ...request, stream: true })) {
    text += part.response;
    last = part;
  }
  assert.equal(text, GOLDEN);
  assert.equal(last?.done, true);
  assert.equal(last?.prompt_eval_count, 5);
  assert.equal(last?.eval_count, 60);
});

test("stories260K: chat with tools runs through the model's template and ends normally", { skip: stories.skip }, async () => {
  const reply = await ollama.chat({
    model: "stories260K:latest",
    messages: [{ role: "user", content: "What time is it?" }],
    tools: [{ type: "function", function: { name: "get_time", description: "the time now", parameters: { type: "object", properties: {} } } }],
    options: { temperature: 0, num_predict: 20 },
  });
  assert.equal(reply.done, true);
  assert.equal(reply.message.role, "assistant");
  assert.equal(typeof reply.message.content, "string");
  assert.ok(reply.prompt_eval_count > 0);
});
