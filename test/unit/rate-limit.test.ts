// The rate-limit plugin on a bare Fastify app (no model): windows under a fake clock, keys vs IPs,
// per-key overrides, the hourly window, tokens per minute, concurrency, exempt routes, and the store.
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import Fastify from "fastify";
import type { Principal, RateLimits } from "../../src/auth/principal.js";
import type { GenerationResult } from "../../src/core/generation.js";
import { registerErrorHandling } from "../../src/errors/error-handler.js";
import { rateLimitPlugin } from "../../src/limits/rate-limit.js";
import { LocalStore } from "../../src/limits/store/local-store.js";
import type { RegistryEvent } from "../../src/registry/model-registry.js";

const DEFAULTS: RateLimits = { requestsPerMinute: 100, requestsPerHour: 1000, tokensPerMinute: 10_000, concurrentRequests: 10 };
const START = 1_700_000_000_000;

async function build(t: TestContext, opts: { limits?: Partial<RateLimits>; enabled?: boolean } = {}) {
  let clock = START;
  const listeners = new Set<(event: RegistryEvent) => void>();
  const refused: string[] = [];
  const app = Fastify();
  registerErrorHandling(app);
  app.decorate("metrics", { rateLimited: { inc: (labels: { limit: string }) => refused.push(labels.limit) } } as never);
  // Test-only stand-in for the auth plugin (an earlier onRequest hook): `x-test-key` is the API key id,
  // `x-test-rpm` that key's own requests-per-minute limit.
  app.addHook("onRequest", async (request) => {
    const keyId = request.headers["x-test-key"];
    if (typeof keyId !== "string") return;
    const rpm = request.headers["x-test-rpm"];
    const principal: Principal = { user: keyId, role: "user", via: "api-key", keyId };
    if (typeof rpm === "string") principal.limits = { requestsPerMinute: Number(rpm) };
    request.principal = principal;
  });
  await app.register(rateLimitPlugin, {
    enabled: opts.enabled ?? true,
    defaults: { ...DEFAULTS, ...opts.limits },
    generations: { observe: (l) => (listeners.add(l), () => listeners.delete(l)) },
    now: () => clock,
  });
  let hold: Promise<void> = Promise.resolve();
  app.get("/work", async () => ({ ok: true }));
  app.get("/v1/work", async () => ({ ok: true }));
  app.get("/own", { config: { rateLimit: { max: 1 } } }, async () => ({ ok: true }));
  app.get("/health", async () => ({ status: "healthy" }));
  app.get("/v2/health/live", async () => ({ live: true }));
  app.get("/slow", async () => {
    await hold;
    return { ok: true };
  });
  // Reports a finished generation the way the model registry does: from inside the handler.
  app.post<{ Body: { tokens: number } }>("/generate", async (request) => {
    const result: GenerationResult = {
      text: "", finishReason: "length", promptTokens: 2, completionTokens: request.body.tokens - 2,
      cachedPromptTokens: 0, timeToFirstTokenMs: 0, totalMs: 0,
    };
    for (const listener of listeners) listener({ kind: "generation", model: "m", result });
    return { ok: true };
  });
  t.after(() => app.close());
  return {
    app,
    refused,
    advance: (ms: number) => (clock += ms),
    now: () => clock,
    holdUntil: (p: Promise<void>) => (hold = p),
    get: (url: string, headers: Record<string, string> = {}, remoteAddress = "10.0.0.1") =>
      app.inject({ method: "GET", url, headers, remoteAddress }),
  };
}

describe("requests per minute (@fastify/rate-limit)", () => {
  it("counts down in the headers, gives the reset as an epoch second, and reopens after the window", async (t) => {
    const s = await build(t, { limits: { requestsPerMinute: 2 } });
    for (const remaining of ["1", "0"]) {
      const res = await s.get("/work");
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers["x-ratelimit-limit"], "2");
      assert.equal(res.headers["x-ratelimit-remaining"], remaining);
      assert.equal(res.headers["x-ratelimit-reset"], String(Math.ceil(START / 1000) + 60));
      assert.equal(res.headers["x-ratelimit-reset-after"], "60");
    }
    const refused = await s.get("/work");
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.headers["retry-after"], "60");
    assert.equal(refused.headers["x-ratelimit-remaining"], "0");
    assert.equal(refused.headers["x-ratelimit-reset"], String(Math.ceil(START / 1000) + 60));
    const body = refused.json();
    assert.equal(body.error.code, "RATE_LIMIT_EXCEEDED");
    assert.equal(body.error.message, "Rate limit exceeded. Please retry after 60 seconds.");
    assert.deepEqual(body.error.details, { retry_after: 60, limit: "requests_per_minute" });
    assert.deepEqual(s.refused, ["requests_per_minute"]);

    s.advance(30_000);
    const later = await s.get("/v1/work");
    assert.equal(later.statusCode, 429);
    assert.equal(later.headers["retry-after"], "30");
    assert.equal(later.headers["x-ratelimit-reset-after"], "30");
    assert.deepEqual(later.json().error, {
      message: "Rate limit exceeded. Please retry after 30 seconds.", type: "rate_limit_error", param: null, code: "rate_limit_exceeded",
    });

    s.advance(30_000);
    const reopened = await s.get("/work");
    assert.equal(reopened.statusCode, 200);
    assert.equal(reopened.headers["x-ratelimit-remaining"], "1");
    assert.equal(reopened.headers["x-ratelimit-reset"], String(Math.ceil(s.now() / 1000) + 60));
  });

  it("counts each API key apart from the others and from IPs, and honours a key's own limit", async (t) => {
    const s = await build(t, { limits: { requestsPerMinute: 2 } });
    const status = async (headers: Record<string, string>, ip?: string) => (await s.get("/work", headers, ip)).statusCode;
    assert.deepEqual([await status({ "x-test-key": "a" }), await status({ "x-test-key": "a" }), await status({ "x-test-key": "a" })], [200, 200, 429]);
    assert.equal(await status({ "x-test-key": "b" }), 200);
    assert.deepEqual([await status({}, "10.0.0.1"), await status({}, "10.0.0.1"), await status({}, "10.0.0.1")], [200, 200, 429]);
    assert.equal(await status({}, "10.0.0.2"), 200);
    // A key is one key whatever IP it comes from.
    assert.equal(await status({ "x-test-key": "a" }, "10.0.0.3"), 429);

    const own = { "x-test-key": "c", "x-test-rpm": "5" };
    for (let i = 0; i < 5; i++) {
      const res = await s.get("/work", own);
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers["x-ratelimit-limit"], "5");
    }
    assert.equal(await status(own), 429);
  });
});

describe("what @fastify/rate-limit lacks", () => {
  it("requests per hour: a second window, refused until it closes", async (t) => {
    const s = await build(t, { limits: { requestsPerHour: 3 } });
    for (let i = 0; i < 3; i++) assert.equal((await s.get("/work")).statusCode, 200);
    const refused = await s.get("/work");
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.headers["retry-after"], "3600");
    assert.deepEqual(refused.json().error.details, { retry_after: 3600, limit: "requests_per_hour" });
    s.advance(59 * 60_000);
    const still = await s.get("/work");
    assert.equal(still.statusCode, 429);
    assert.equal(still.json().error.details.retry_after, 60);
    s.advance(60_000);
    assert.equal((await s.get("/work")).statusCode, 200);
    assert.deepEqual(s.refused, ["requests_per_hour", "requests_per_hour"]);
  });

  it("tokens per minute: a generation over the budget refuses the key's next requests until the window closes", async (t) => {
    const s = await build(t, { limits: { tokensPerMinute: 10 } });
    const generate = (key: string, tokens: number) =>
      s.app.inject({ method: "POST", url: "/generate", headers: { "x-test-key": key }, payload: { tokens } });
    assert.equal((await generate("a", 6)).statusCode, 200);
    assert.equal((await s.get("/work", { "x-test-key": "a" })).statusCode, 200, "6 of 10 tokens used");
    assert.equal((await generate("a", 6)).statusCode, 200);
    const refused = await s.get("/work", { "x-test-key": "a" });
    assert.equal(refused.statusCode, 429);
    assert.deepEqual(refused.json().error.details, { retry_after: 60, limit: "tokens_per_minute" });
    assert.equal((await s.get("/work", { "x-test-key": "b" })).statusCode, 200, "other keys keep their budget");
    s.advance(60_000);
    assert.equal((await s.get("/work", { "x-test-key": "a" })).statusCode, 200);
  });

  it("concurrent requests: refused at once while the key's others run, counted down when they end", async (t) => {
    const s = await build(t, { limits: { concurrentRequests: 1 } });
    let finish!: () => void;
    s.holdUntil(new Promise<void>((resolve) => (finish = resolve)));
    const first = s.get("/slow");
    await new Promise((resolve) => setImmediate(resolve));
    const refused = await s.get("/work");
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.headers["retry-after"], "1");
    assert.equal(refused.json().error.details.limit, "concurrent_requests");
    assert.equal((await s.get("/work", {}, "10.0.0.9")).statusCode, 200, "another client is not affected");
    finish();
    assert.equal((await first).statusCode, 200);
    assert.equal((await s.get("/work")).statusCode, 200);
    assert.equal((await s.get("/work")).statusCode, 200, "refused requests released nothing they did not hold");
  });
});

describe("scope", () => {
  it("a route with its own per-minute policy in its config counts apart", async (t) => {
    const s = await build(t, { limits: { requestsPerMinute: 2 } });
    assert.equal((await s.get("/own")).headers["x-ratelimit-limit"], "1");
    assert.equal((await s.get("/own")).statusCode, 429);
    assert.equal((await s.get("/work")).statusCode, 200);
    assert.equal((await s.get("/work")).statusCode, 200);
  });


  it("health checks are never counted nor refused", async (t) => {
    const s = await build(t, { limits: { requestsPerMinute: 1 } });
    for (let i = 0; i < 3; i++) {
      for (const url of ["/health", "/v2/health/live"]) {
        const res = await s.get(url);
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers["x-ratelimit-limit"], undefined);
      }
    }
    assert.equal((await s.get("/work")).statusCode, 200);
  });

  it("switched off, nothing is counted and no header is added", async (t) => {
    const s = await build(t, { enabled: false, limits: { requestsPerMinute: 1, concurrentRequests: 1 } });
    for (let i = 0; i < 3; i++) {
      const res = await s.get("/work");
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers["x-ratelimit-limit"], undefined);
      assert.equal(res.headers["x-ratelimit-reset"], undefined);
    }
  });
});

describe("LocalStore", () => {
  it("counts in fixed windows that open on first use and close after windowMs", async () => {
    let now = 0;
    const store = new LocalStore(() => now);
    assert.deepEqual(await store.incr("k", 1000), { count: 1, resetAt: 1000 });
    now = 400;
    assert.deepEqual(await store.incr("k", 1000, 5), { count: 6, resetAt: 1000 });
    assert.deepEqual(await store.get("k"), { count: 6, resetAt: 1000 });
    now = 1000;
    assert.equal(await store.get("k"), undefined);
    assert.deepEqual(await store.incr("k", 1000), { count: 1, resetAt: 2000 });
  });

  it("sweeps expired windows as keys come and go", async () => {
    let now = 0;
    const store = new LocalStore(() => now);
    for (let i = 0; i < 5000; i++) {
      now = i;
      await store.incr(`k${i}`, 10);
    }
    const size = (store as unknown as { windows: Map<string, unknown> }).windows.size;
    assert.ok(size < 2100, `expired windows were dropped (${size} left)`);
  });
});
