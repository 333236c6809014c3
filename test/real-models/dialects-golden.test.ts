// Needs ../shared/models/stories260K.gguf; skipped without it, required in CI.
// The same greedy request through every dialect gives MODELS.md's golden continuation.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { realModel } from "../helpers/paths.js";
import { postJson, readSse, startTestServer, type TestServer } from "../helpers/server.js";

const stories = realModel("stories260K.gguf");
const GOLDEN =
  ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily";
/** A chat template that passes the user's text through, so chat and completion see the same story start. */
const PASS_THROUGH = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}";
const PROMPT = "Once upon a time";

let srv: TestServer;
let openai: OpenAI;
let ollama: Ollama;
before(async () => {
  if (stories.skip) return;
  srv = await startTestServer({ models: { stories260K: stories.path }, config: { contextSize: 2048 } });
  const reg = await postJson(`${srv.url}/models`, { name: "stories-chat", path: stories.path, options: { chat_template: PASS_THROUGH } });
  assert.equal(reg.status, 201);
  openai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0 });
  ollama = new Ollama({ host: srv.url });
});
after(() => srv?.cleanup());

test("native, OpenAI and Ollama completion routes agree on the golden text", { skip: stories.skip }, async () => {
  const native = await postJson(`${srv.url}/inference`, { model: "stories260K", prompt: PROMPT, max_tokens: 60, temperature: 0 });
  const nativeStream = await readSse(
    await fetch(`${srv.url}/inference/stream`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories260K", prompt: PROMPT, max_tokens: 60, temperature: 0 }),
    }),
  );
  const completion = await openai.completions.create({ model: "stories260K", prompt: PROMPT, max_tokens: 60, temperature: 0 });
  const generate = await ollama.generate({ model: "stories260K", prompt: PROMPT, raw: true, options: { temperature: 0, num_predict: 60 } });
  let ollamaStream = "";
  for await (const part of await ollama.generate({ model: "stories260K", prompt: PROMPT, raw: true, stream: true, options: { temperature: 0, num_predict: 60 } })) {
    ollamaStream += part.response;
  }
  assert.deepEqual(
    {
      native: native.body.choices[0].text,
      nativeStream: nativeStream.slice(0, -1).map((e) => e.token).join(""),
      openai: completion.choices[0]!.text,
      ollama: generate.response,
      ollamaStream,
    },
    { native: GOLDEN, nativeStream: GOLDEN, openai: GOLDEN, ollama: GOLDEN, ollamaStream: GOLDEN },
  );
});

test("chat routes (OpenAI SDK, Ollama client) agree on the golden text through a chat template", { skip: stories.skip }, async () => {
  const messages = [{ role: "user" as const, content: PROMPT }];
  const chat = await openai.chat.completions.create({ model: "stories-chat", messages, max_tokens: 60, temperature: 0 });
  let streamed = "";
  for await (const c of await openai.chat.completions.create({ model: "stories-chat", messages, max_tokens: 60, temperature: 0, stream: true })) {
    streamed += c.choices[0]?.delta.content ?? "";
  }
  const ollamaChat = await ollama.chat({ model: "stories-chat", messages, options: { temperature: 0, num_predict: 60 } });
  assert.deepEqual(
    { openai: chat.choices[0]!.message.content, openaiStream: streamed, ollama: ollamaChat.message.content },
    { openai: GOLDEN, openaiStream: GOLDEN, ollama: GOLDEN },
  );
});
