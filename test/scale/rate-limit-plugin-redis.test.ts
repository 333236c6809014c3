// The rate-limit plugin with a RedisLimitStore on bare Fastify apps (two, as two replicas) and a real
// redis-server: HTTP requests and `rateLimiter.admit` (how gRPC and IPC calls are counted) share one
// window across both apps, and an unreachable Redis is a coded 503 with Retry-After on both paths.
// Needs redis-server (skipped without it unless INFERNO_REQUIRE_REDIS=1); no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify from "fastify";
import type { RateLimits } from "../../src/auth/principal.js";
import { InfernoError } from "../../src/errors/catalogue.js";
import { registerErrorHandling } from "../../src/errors/error-handler.js";
import { rateLimitPlugin } from "../../src/limits/rate-limit.js";
import { RedisLimitStore } from "../../src/limits/store/redis-store.js";
import { SharedRedis } from "../../src/shared/redis.js";
import { redisAvailable, startRedis } from "../helpers/redis.js";

const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
const DEFAULTS: RateLimits = { requestsPerMinute: 4, requestsPerHour: 1000, tokensPerMinute: 10_000, concurrentRequests: 10 };

test("HTTP and admit() count in one Redis window across apps", redisAvailable(), async (t) => {
  const redis = await startRedis();
  t.after(() => redis.close());
  const apps = await Promise.all(
    ["r1", "r2"].map(async (replicaId) => {
      const shared = new SharedRedis({ url: redis.url, log: silent });
      await shared.waitReady();
      const app = Fastify();
      registerErrorHandling(app);
      const redisStore = new RedisLimitStore({ redis: shared, replicaId, leaseMs: 5000 });
      await app.register(rateLimitPlugin, { enabled: true, defaults: DEFAULTS, generations: { observe: () => () => {} }, redisStore });
      app.get("/work", async () => ({ ok: true }));
      app.get("/health", async () => ({ ok: true }));
      await app.ready();
      t.after(async () => {
        await app.close();
        await shared.close();
      });
      return { app, shared };
    }),
  );
  const [one, two] = apps as [(typeof apps)[0], (typeof apps)[0]];
  const ip = "10.1.2.3";

  const first = await one.app.inject({ url: "/work", remoteAddress: ip });
  assert.equal(first.statusCode, 200);
  assert.equal(first.headers["x-ratelimit-remaining"], "3");
  const call = await two.app.rateLimiter.admit(undefined, ip);
  assert.equal(call.key, `ip:${ip}`);
  call.release();
  (await one.app.rateLimiter.admit(undefined, ip)).release();
  const last = await two.app.inject({ url: "/work", remoteAddress: ip });
  assert.equal(last.headers["x-ratelimit-remaining"], "0");

  const refused = await one.app.inject({ url: "/work", remoteAddress: ip });
  assert.equal(refused.statusCode, 429);
  assert.equal(refused.json().error.details.limit, "requests_per_minute");
  assert.ok(Number(refused.headers["retry-after"]) >= 59);
  await assert.rejects(two.app.rateLimiter.admit(undefined, ip), (err: unknown) => err instanceof InfernoError && err.code === "RATE_LIMIT_EXCEEDED");

  await redis.kill();
  for (let i = 0; i < 100 && (one.shared.ready || two.shared.ready); i++) await sleep(10);
  const down = await one.app.inject({ url: "/work", remoteAddress: "10.9.9.9" });
  assert.equal(down.statusCode, 503);
  assert.equal(down.json().error.details.reason, "redis_unavailable");
  assert.equal(down.headers["retry-after"], "2");
  assert.equal((await one.app.inject({ url: "/health" })).statusCode, 200);
  await assert.rejects(two.app.rateLimiter.admit(undefined, "10.9.9.9"), (err: unknown) => err instanceof InfernoError && err.code === "SERVICE_UNAVAILABLE");
});
