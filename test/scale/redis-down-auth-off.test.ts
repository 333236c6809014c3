// What needs Redis and what does not (issue #18): with auth off, a Redis that is not there changes
// nothing for inference; only readiness says so. While draining, readiness is false and liveness true.
// Needs no redis-server (the URL points at a closed port) and only the generated tiny model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { postJson, startTestServer } from "../helpers/server.js";

// The file's process must also exit afterwards: closing with Redis unreachable leaves no reconnecting client.
test("auth off, Redis unreachable: inference goes on; /health/ready names redis, /health/live stays 200; draining: not ready", async (t) => {
  const srv = await startTestServer({ tinyModels: ["tiny"], config: { auth: false, redisUrl: "redis://127.0.0.1:1" } });
  t.after(() => srv.cleanup());
  const done = await postJson(`${srv.url}/inference`, { model: "tiny", prompt: "hello", max_tokens: 4, temperature: 0 });
  assert.equal(done.status, 200);
  assert.equal((await fetch(`${srv.url}/v1/models`)).status, 200);

  const ready = await fetch(`${srv.url}/health/ready`);
  assert.equal(ready.status, 503);
  assert.deepEqual(await ready.json(), { status: "not_ready", not_ready: ["redis"], checks: { draining: false, redis: "unavailable", registry: "ready" } });
  assert.equal((await fetch(`${srv.url}/health/live`)).status, 200);

  // An open call (as a gRPC call would be) keeps the drain going while the probes are asked.
  const release = srv.app.trackCall(() => undefined);
  const drained = srv.app.drain(30_000);
  const draining = await srv.app.inject({ method: "GET", url: "/health/ready" });
  assert.equal(draining.statusCode, 503);
  assert.deepEqual(draining.json().not_ready, ["draining", "redis"]);
  assert.equal((await srv.app.inject({ method: "GET", url: "/health/live" })).statusCode, 200);
  assert.equal((await srv.app.inject({ method: "GET", url: "/v1/models" })).statusCode, 503, "other routes are refused while draining");
  release();
  await drained;
});

test("one process without Redis: /health/ready is 200 with redis not_configured", async (t) => {
  const srv = await startTestServer();
  t.after(() => srv.cleanup());
  const ready = await srv.app.inject({ method: "GET", url: "/health/ready" });
  assert.equal(ready.statusCode, 200);
  assert.deepEqual(ready.json(), { status: "ready", checks: { draining: false, redis: "not_configured", registry: "ready" } });
});
