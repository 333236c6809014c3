// The Redis limit scripts (src/limits/store/redis-*.ts) against a real redis-server, without Inferno
// processes: counts stay exact under concurrent calls from several connections, every key has a TTL,
// a concurrency slot outlives its lease only while refreshed, and an outage is a fast coded 503.
// Needs redis-server (skipped without it unless INFERNO_REQUIRE_REDIS=1); no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { RateLimits } from "../../src/auth/principal.js";
import { InfernoError } from "../../src/errors/catalogue.js";
import { RedisLimitStore } from "../../src/limits/store/redis-store.js";
import { SharedRedis } from "../../src/shared/redis.js";
import { redisAvailable, startRedis, type TestRedis } from "../helpers/redis.js";

const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
const LIMITS: RateLimits = { requestsPerMinute: 1000, requestsPerHour: 10_000, tokensPerMinute: 1000, concurrentRequests: 1000 };

/** `n` replicas' stores, each on its own connection. */
async function replicas(redis: TestRedis, n: number, leaseMs = 10_000) {
  const stores: RedisLimitStore[] = [];
  const conns: SharedRedis[] = [];
  for (let i = 0; i < n; i++) {
    const shared = new SharedRedis({ url: redis.url, log: silent });
    await shared.waitReady();
    conns.push(shared);
    stores.push(new RedisLimitStore({ redis: shared, replicaId: `r${i}`, leaseMs }));
  }
  return {
    stores,
    conns,
    close: async () => {
      for (const s of stores) s.close();
      await Promise.all(conns.map((c) => c.close()));
    },
  };
}

test("Redis limit scripts", redisAvailable(), async (t) => {
  const redis = await startRedis();
  t.after(() => redis.close());
  const fleet = await replicas(redis, 4);
  t.after(() => fleet.close());
  const { stores, conns } = fleet;
  const spread = (i: number) => stores[i % stores.length]!;

  await t.test("200 concurrent requests against a limit of 50 per minute: exactly 50 admitted", async () => {
    const limits = { ...LIMITS, requestsPerMinute: 50 };
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => spread(i).admit("ip:10.0.0.1", limits)));
    assert.equal(results.filter((r) => !r.refused).length, 50);
    assert.ok(results.filter((r) => r.refused).every((r) => r.refused!.limit === "requests_per_minute" && r.refused!.waitMs > 59_000));
    for (const r of results) r.release();
  });

  await t.test("200 concurrent requests against 5 concurrent slots: exactly 5 admitted, freed on release", async () => {
    const limits = { ...LIMITS, concurrentRequests: 5 };
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => spread(i).admit("key:conc", limits)));
    const admitted = results.filter((r) => !r.refused);
    assert.equal(admitted.length, 5);
    assert.ok(results.filter((r) => r.refused).every((r) => r.refused!.limit === "concurrent_requests"));
    assert.equal(await conns[0]!.run((c) => c.zcard("inferno:rl:{key:conc}:conc")), 5);
    for (const r of admitted) r.release();
    for (let i = 0; i < 50 && (await conns[0]!.run((c) => c.zcard("inferno:rl:{key:conc}:conc"))) > 0; i++) await sleep(10);
    const again = await Promise.all(Array.from({ length: 20 }, (_, i) => spread(i).admit("key:conc", limits)));
    assert.equal(again.filter((r) => !r.refused).length, 5);
    for (const r of again) r.release();
  });

  await t.test("the hour window counts across replicas", async () => {
    const limits = { ...LIMITS, requestsPerHour: 3 };
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await spread(i).admit("user:hourly", limits));
    assert.deepEqual(results.map((r) => r.refused?.limit ?? "ok"), ["ok", "ok", "ok", "requests_per_hour", "requests_per_hour"]);
    assert.ok(results[3]!.refused!.waitMs > 3_500_000);
  });

  await t.test("tokens charged on one replica refuse the next request on another", async () => {
    const limits = { ...LIMITS, tokensPerMinute: 100 };
    assert.equal((await stores[0]!.admit("ip:10.0.0.2", limits)).refused, undefined);
    await Promise.all(Array.from({ length: 10 }, (_, i) => spread(i).incr("tpm:ip:10.0.0.2", 60_000, 10)));
    const window = await stores[3]!.get("tpm:ip:10.0.0.2");
    assert.equal(window?.count, 100);
    const refused = await stores[2]!.admit("ip:10.0.0.2", limits);
    assert.equal(refused.refused?.limit, "tokens_per_minute");
    assert.ok(refused.refused!.waitMs > 0 && refused.refused!.waitMs <= 60_000);
  });

  await t.test("every key has a TTL no longer than its window or lease", async () => {
    const keys = await conns[0]!.run((c) => c.keys("inferno:rl:*"));
    assert.ok(keys.length >= 8, keys.join(" "));
    for (const key of keys) {
      const ttl = await conns[0]!.run((c) => c.pttl(key));
      const max = key.endsWith(":rph") ? 3_600_000 : key.endsWith(":conc") ? 10_000 : 60_000;
      assert.ok(ttl > 0 && ttl <= max, `${key}: ${ttl}`);
    }
  });

  await t.test("a held slot outlives its lease while refreshed; an abandoned one comes free after it", async () => {
    const short = await replicas(redis, 2, 1000);
    t.after(() => short.close());
    const [holder, other] = short.stores as [RedisLimitStore, RedisLimitStore];
    const limits = { ...LIMITS, concurrentRequests: 1 };
    const held = await holder.admit("ip:10.0.0.3", limits);
    assert.equal(held.refused, undefined);
    await sleep(2500);
    assert.equal((await other.admit("ip:10.0.0.3", limits)).refused?.limit, "concurrent_requests", "refreshed past its lease");
    // The holder stops refreshing, as a replica that died would.
    holder.close();
    const started = Date.now();
    let freed;
    while (!(freed = await other.admit("ip:10.0.0.3", limits)) || freed.refused) await sleep(100);
    assert.ok(Date.now() - started <= 1500, `freed after ${Date.now() - started} ms`);
    freed.release();
  });

  await t.test("Redis down: a fast coded 503; back: counting again", async () => {
    await redis.kill();
    for (let i = 0; i < 100 && conns[0]!.ready; i++) await sleep(10);
    const started = performance.now();
    await assert.rejects(stores[0]!.admit("ip:10.0.0.4", LIMITS), (err: unknown) => {
      assert.ok(err instanceof InfernoError);
      assert.equal(err.code, "SERVICE_UNAVAILABLE");
      assert.equal(err.details?.reason, "redis_unavailable");
      return true;
    });
    assert.ok(performance.now() - started < 100);
    await redis.start();
    await conns[0]!.waitReady(10_000);
    const after = await stores[0]!.admit("ip:10.0.0.4", LIMITS);
    assert.equal(after.refused, undefined);
    assert.equal(after.minute.count, 1);
    after.release();
  });
});
