// Needs no external model: a tiny llama GGUF with a long context is generated at test time.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { LlamaTextModel } from "../../src/runtimes/llama/llama-text-model.js";
import { writeTinyLlamaGguf } from "../fixtures/gguf-writer.js";
import { tempDir } from "../helpers/paths.js";
import { holdSequence, postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
let cleanupFixture: () => Promise<void>;

before(async () => {
  const tmp = await tempDir();
  cleanupFixture = tmp.cleanup;
  const file = path.join(tmp.dir, "long.gguf");
  await writeTinyLlamaGguf(file, { contextLength: 8192 });
  srv = await startTestServer({
    models: { long: file },
    config: { contextSize: 8192, parallel: 1, maxTokensLimit: 8000, queueSize: 1, queueTimeoutMs: 400 },
  });
});
after(async () => {
  await srv.cleanup();
  await cleanupFixture();
});

test("a full queue answers 503 with Retry-After at once; a long wait answers 504 TIMEOUT", async () => {
  await postJson(`${srv.url}/models/long/load`, {});
  const model = srv.app.registry.getLoaded("long") as LlamaTextModel;
  const holder = await holdSequence(srv.app, "long"); // the only sequence
  assert.equal(model.inFlight, 1);
  const queued = postJson(`${srv.url}/inference`, { model: "long", prompt: "queued", max_tokens: 2 });
  for (let i = 0; i < 100 && model.queued === 0; i++) await sleep(5);
  assert.equal(model.queued, 1);
  const started = performance.now();
  const full = await postJson(`${srv.url}/inference`, { model: "long", prompt: "one too many", max_tokens: 2 });
  assert.equal(full.status, 503);
  assert.equal(full.body.error.code, "SERVICE_UNAVAILABLE");
  assert.equal(full.headers.get("retry-after"), "1");
  assert.ok(performance.now() - started < 300, "refused at once, not after a timeout");
  const timedOut = await queued;
  assert.equal(timedOut.status, 504);
  assert.equal(timedOut.body.error.code, "TIMEOUT");
  assert.equal(model.queued, 0);
  await holder.return(undefined as never);
  assert.equal(model.inFlight, 0);
  assert.equal((await postJson(`${srv.url}/inference`, { model: "long", prompt: "after", max_tokens: 2 })).status, 200);
});
