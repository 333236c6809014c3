// The replica's Redis connection against a real redis-server: commands work, a Redis that goes away makes
// them fail at once with the coded 503 (no queueing, no hang), and the connection comes back by itself.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { InfernoError } from "../../src/errors/catalogue.js";
import { redactUrl, SharedRedis } from "../../src/shared/redis.js";
import { redisAvailable, startRedis } from "../helpers/redis.js";

const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

test("a Redis outage is a fast coded 503, then the connection comes back", redisAvailable(), async (t) => {
  const redis = await startRedis();
  t.after(() => redis.close());
  const shared = new SharedRedis({ url: redis.url, log: silent });
  t.after(() => shared.close());
  await shared.waitReady();
  await shared.run((c) => c.set("inferno:test", "1"));
  assert.equal(await shared.run((c) => c.get("inferno:test")), "1");

  await redis.kill();
  for (let i = 0; i < 100 && shared.ready; i++) await sleep(10);
  const started = performance.now();
  await assert.rejects(shared.run((c) => c.get("inferno:test")), (err: unknown) => {
    assert.ok(err instanceof InfernoError);
    assert.equal(err.code, "SERVICE_UNAVAILABLE");
    assert.equal(err.status, 503);
    assert.equal(err.details?.reason, "redis_unavailable");
    assert.equal(typeof err.details?.retry_after, "number");
    return true;
  });
  assert.ok(performance.now() - started < 100, "refused at once, not after a timeout");

  await redis.start();
  await shared.waitReady(10_000);
  assert.equal(await shared.run((c) => c.get("inferno:test")), "1", "AOF kept the value across the restart");
});

test("a Redis URL's password never reaches the logs", () => {
  assert.equal(redactUrl("redis://:s3cret@host:6379/0"), "redis://:***@host:6379/0");
  assert.equal(redactUrl("rediss://user:s3cret@host:6380"), "rediss://user:***@host:6380");
  assert.equal(redactUrl("redis://host:6379"), "redis://host:6379");
});
