// The request-timeout plugin on a bare Fastify app (no model), with a 50 ms limit: work that honours the
// request's signal is answered with 504 TIMEOUT in its dialect; work that ignores it is answered for.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it, type TestContext } from "node:test";
import Fastify from "fastify";
import { registerErrorHandling } from "../../src/errors/error-handler.js";
import { abortOnDisconnect } from "../../src/http/sse.js";
import { requestTimeoutPlugin } from "../../src/limits/request-timeout.js";

async function build(t: TestContext) {
  const app = Fastify({ logger: false });
  registerErrorHandling(app);
  await app.register(requestTimeoutPlugin, { timeoutMs: 50, graceMs: 50 });
  const seen: { reason?: unknown } = {};
  // Like a generation: stops when the signal aborts and returns what it has.
  const honours = async (_request: unknown, reply: Parameters<typeof abortOnDisconnect>[0]) => {
    const { signal } = abortOnDisconnect(reply);
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    seen.reason = signal.reason;
    return { text: "partial" };
  };
  app.post("/inference", honours);
  app.post("/v1/completions", honours);
  app.post("/api/generate", honours);
  app.get("/quick", async () => ({ ok: true }));
  app.get("/download", { config: { timeLimit: false } }, async (request) => {
    await sleep(150); // a model download: longer than the limit, and exempt from it
    return { aborted: request.abortSignal?.aborted };
  });
  app.get("/stuck", async () => {
    await sleep(400); // ignores the signal, like a model that is still loading
    return { ok: true };
  });
  t.after(() => app.close());
  return { app, seen };
}

describe("request timeout", () => {
  it("leaves a route with timeLimit: false alone", async (t) => {
    const { app } = await build(t);
    const res = await app.inject({ method: "GET", url: "/download" });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { aborted: false });
  });

  it("aborts the work and answers 504 TIMEOUT in the route's dialect", async (t) => {
    const { app, seen } = await build(t);
    const native = await app.inject({ method: "POST", url: "/inference" });
    assert.equal(native.statusCode, 504);
    assert.equal(native.json().error.code, "TIMEOUT");
    assert.deepEqual(native.json().error.details, { timeout_ms: 50 });
    assert.equal((seen.reason as { code?: string }).code, "TIMEOUT", "the work's signal carries the TIMEOUT");

    const openai = await app.inject({ method: "POST", url: "/v1/completions" });
    assert.equal(openai.statusCode, 504);
    assert.equal(openai.json().error.type, "server_error");
    assert.equal(openai.json().error.code, "timeout");

    const ollama = await app.inject({ method: "POST", url: "/api/generate" });
    assert.equal(ollama.statusCode, 504);
    assert.match(ollama.json().error, /did not complete within 50 ms/);
  });

  it("answers for work that ignores the signal, a grace period after the limit", async (t) => {
    const { app } = await build(t);
    const started = performance.now();
    const res = await app.inject({ method: "GET", url: "/stuck" });
    assert.equal(res.statusCode, 504);
    assert.equal(res.json().error.code, "TIMEOUT");
    assert.ok(performance.now() - started < 350, "answered before the work ended");
    await sleep(400); // the late result is dropped without harm
    assert.equal((await app.inject({ method: "GET", url: "/quick" })).statusCode, 200);
  });

  it("leaves requests that finish in time alone", async (t) => {
    const { app } = await build(t);
    const res = await app.inject({ method: "GET", url: "/quick" });
    assert.equal(res.statusCode, 200);
    await sleep(120);
    assert.deepEqual(res.json(), { ok: true });
  });
});
