// Needs no external model: a tiny llama GGUF with a long context is generated at test time.
import assert from "node:assert/strict";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { holdSequence, postJson, startTestServer, waitIdle, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let cleanupFixture: () => Promise<void>;
const LONG = 8000;

before(async () => {
  const tmp = await tempDir();
  cleanupFixture = tmp.cleanup;
  const file = path.join(tmp.dir, "long.gguf");
  await writeTinyLlamaGguf(file, { contextLength: 8192 });
  // One sequence only: a request that leaked its sequence would block the next one forever.
  srv = await startTestServer({ models: { long: file }, config: { contextSize: 8192, parallel: 1, maxTokensLimit: LONG } });
});
after(async () => {
  await srv.cleanup();
  await cleanupFixture();
});

for (const streamed of [true, false]) {
  test(`a client that disconnects (${streamed ? "SSE" : "non-streaming"}) stops generation and frees the sequence`, async () => {
    await postJson(`${srv.url}/models/long/load`, {});
    const model = srv.app.registry.getLoaded("long") as LlamaTextModel;
    const before = model.generatedTokens;
    const controller = new AbortController();
    const res = fetch(`${srv.url}/inference${streamed ? "/stream" : ""}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "long", prompt: "hello", max_tokens: LONG, temperature: 0 }),
      signal: controller.signal,
    });
    if (streamed) {
      const reader = (await res).body!.getReader();
      await reader.read(); // at least one event arrived: generation is running
    } else {
      while (model.generatedTokens === before) await sleep(1);
    }
    controller.abort();
    await res.then((r) => r.body?.cancel()).catch(() => undefined);
    await waitIdle(model);
    assert.equal(model.inFlight, 0, "the request left the model");
    const produced = model.generatedTokens - before;
    assert.ok(produced < LONG, `generation stopped early (${produced} of ${LONG} tokens)`);
    // The single sequence is free again: another request is served at once.
    const next = await postJson(`${srv.url}/inference`, { model: "long", prompt: "hello", max_tokens: 4, temperature: 0 });
    assert.equal(next.status, 200);
    assert.equal(next.body.usage.completion_tokens, 4);
  });
}

test("a request waiting for a sequence is dropped from the queue when its client leaves", async () => {
  const model = srv.app.registry.getLoaded("long") as LlamaTextModel;
  const holder = await holdSequence(srv.app, "long"); // the only sequence
  const waiting = new AbortController();
  const second = fetch(`${srv.url}/inference`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "long", prompt: "queued", max_tokens: 4, temperature: 0 }),
    signal: waiting.signal,
  }).catch(() => undefined);
  for (let i = 0; i < 200 && model.queued === 0; i++) await sleep(5);
  assert.equal(model.queued, 1, "second request is queued behind the first");
  waiting.abort();
  await second;
  for (let i = 0; i < 200 && model.queued > 0; i++) await sleep(5);
  assert.equal(model.queued, 0, "the abandoned request left the queue");
  await holder.return(undefined as never);
  assert.equal(model.inFlight, 0);
});

test("a stream that is returned before anyone reads it gives its sequence back", async () => {
  const model = srv.app.registry.getLoaded("long") as LlamaTextModel;
  const unread = await holdSequence(srv.app, "long");
  assert.equal(model.inFlight, 1);
  await unread.return(undefined as never);
  assert.equal(model.inFlight, 0);
  // With one sequence, the next request would wait forever had it leaked.
  const next = await postJson(`${srv.url}/inference`, { model: "long", prompt: "hello", max_tokens: 2 });
  assert.equal(next.status, 200);
});
