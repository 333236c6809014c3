// Needs no external model: a tiny llama GGUF is generated at test time.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { BUCKETS } from "../../src/observability/metrics-summary.js";
import { postJson, startTestServer, type TestServer } from "../helpers/server.js";

let srv: TestServer;
before(async () => {
  srv = await startTestServer({ tinyModels: ["tiny"], config: { auth: true, jwtSecret: "s".repeat(40), rateLimit: false } });
});
after(() => srv.cleanup());

test("GET /metrics/summary: load now and tokens over the last 10 minutes, for authenticated callers only", async () => {
  const { ApiKeyStore } = await import("../../src/auth/api-keys.js");
  const { openDatabase } = await import("../../src/store/database.js");
  const db = openDatabase(srv.dataDir);
  const key = new ApiKeyStore(db).create({ user: "bob", name: "status", role: "user" }).key;
  db.close();
  const headers = { authorization: `Bearer ${key}` };

  const refused = await fetch(`${srv.url}/metrics/summary`);
  assert.equal(refused.status, 401);
  assert.equal(((await refused.json()) as any).error.code, "AUTHENTICATION_FAILED");

  const gen = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hello", max_tokens: 6, temperature: 0 }, { headers: { ...headers, "content-type": "application/json" } });
  assert.equal(gen.status, 200);
  const res = await fetch(`${srv.url}/metrics/summary`, { headers });
  assert.equal(res.status, 200);
  const s = (await res.json()) as any;
  assert.equal(s.bucket_seconds, 10);
  assert.equal(s.history.length, BUCKETS);
  const total = s.history.reduce((n: number, b: any) => n + b.generated_tokens, 0);
  assert.equal(total, gen.body.usage.completion_tokens);
  assert.equal(s.history.reduce((n: number, b: any) => n + b.generations, 0), 1);
  assert.ok(s.tokens_per_second > 0);
  // Its own poll is not a request in flight (the console polls it every 2 s).
  assert.equal(s.in_flight, 0);
  assert.equal(s.queue_depth, 0);
  assert.deepEqual(s.queues, [{ model: "tiny", queued: 0 }]);
  assert.equal(s.models_loaded, 1);

  const unknown = await fetch(`${srv.url}/metrics/summary?window=1`, { headers });
  assert.equal(unknown.status, 400);
  assert.equal(((await unknown.json()) as any).error.code, "INVALID_REQUEST");
});
