// The Redis credential stores (src/auth/redis-api-keys.ts, redis-users.ts) against a real redis-server:
// they answer as the SQLite stores do, keep no plaintext, tell each other about revocations and role
// changes on the auth channel, batch last-used writes, and fail closed while Redis is away. Needs no model.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { redisStores, type CredentialStores } from "../../src/auth/credential-stores.js";
import type { RedisApiKeyStore } from "../../src/auth/redis-api-keys.js";
import { InfernoError } from "../../src/errors/catalogue.js";
import { SharedRedis } from "../../src/shared/redis.js";
import { redisAvailable, startRedis, type TestRedis } from "../helpers/redis.js";

const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
// The lowest scrypt cost keeps the user tests fast; the stores keep the cost beside each hash.
const FAST = { logN: 10, r: 8, p: 1, keyLength: 64 };

/** Polls `check` every 5 ms until it is true; the elapsed ms, or throws after `ms`. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await sleep(5);
  }
  return performance.now() - started;
}

describe("Redis credential stores", redisAvailable(), () => {
  let redis: TestRedis;
  const connections: SharedRedis[] = [];
  /** A replica's view: its own connection, stores and caches. */
  async function replica(): Promise<CredentialStores & { shared: SharedRedis }> {
    const shared = new SharedRedis({ url: redis.url, log: silent });
    connections.push(shared);
    await shared.waitReady();
    const stores = redisStores(shared);
    await stores.subscribed;
    return { ...stores, shared };
  }

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of connections) await c.close();
    await redis?.close();
  });

  it("keys: create, verify, list, revoke as SQLite does; only the secret's sha256 is stored", async () => {
    const a = await replica();
    const k = await a.keys.create({ user: "alice", name: "ci", role: "admin", limits: { requestsPerMinute: 5 } });
    assert.deepEqual(await a.keys.verify(k.key), { user: "alice", role: "admin", via: "api-key", keyId: k.id, limits: { requestsPerMinute: 5 } });
    assert.equal(await a.keys.verify(`${k.key.slice(0, -1)}${k.key.endsWith("A") ? "B" : "A"}`), undefined, "a wrong secret");
    assert.equal(await a.keys.verify("inf_ZZZZZZZZZZZZ_" + "A".repeat(43)), undefined, "an unknown id");
    assert.equal(await a.keys.verify("not a key"), undefined);
    const stored = await a.shared.client.hgetall(`inferno:auth:key:${k.id}`);
    assert.ok(!JSON.stringify(stored).includes(k.key.slice(17)), "no plaintext secret in Redis");
    assert.equal(stored.secret_sha256?.length, 64);
    const listed = await a.keys.list();
    assert.deepEqual(listed.map((x) => x.id), [k.id]);
    assert.equal(listed[0]?.revoked_at, null);
    assert.deepEqual((await a.keys.list({ user: "nobody" })), []);
    const revoked = await a.keys.revoke(k.id);
    assert.equal(typeof revoked?.revoked_at, "number");
    assert.equal(await a.keys.verify(k.key), undefined);
    assert.equal((await a.keys.revoke(k.id))?.revoked_at, revoked?.revoked_at, "the first revocation time stays");
    assert.equal(await a.keys.revoke("nosuchkey123"), undefined);
  });

  it("a revocation on one replica reaches another's cache in well under a second", async () => {
    const [a, b] = [await replica(), await replica()];
    const k = await a.keys.create({ user: "bob", name: "n" });
    assert.ok(await b.keys.verify(k.key), "verified, and now cached on b");
    await a.keys.revoke(k.id);
    const ms = await within(1000, async () => (await b.keys.verify(k.key)) === undefined);
    assert.ok(ms < 1000, `${ms} ms`);
  });

  it("users: create, verify, list, set-role, delete; a role change reaches another replica's role cache", async () => {
    const shared = new SharedRedis({ url: redis.url, log: silent });
    connections.push(shared);
    await shared.waitReady();
    const { RedisUserStore } = await import("../../src/auth/redis-users.js");
    const users = new RedisUserStore(shared, { scrypt: FAST });
    const b = await replica();
    assert.deepEqual(await users.create("dana", "correct horse", "admin"), { username: "dana", role: "admin", created: (await users.get("dana"))!.created });
    await assert.rejects(users.create("dana", "another password"), (err: unknown) => err instanceof InfernoError && err.code === "USER_EXISTS");
    assert.deepEqual(await users.verify("dana", "correct horse"), { user: "dana", role: "admin", via: "jwt" });
    assert.equal(await users.verify("dana", "wrong horse!"), undefined);
    assert.equal(await users.verify("nobody", "correct horse"), undefined);
    await users.create("carl", "password1");
    assert.deepEqual((await users.list()).map((u) => u.username), ["carl", "dana"]);

    assert.equal(await b.roles.roleOf("dana"), "admin", "cached on b");
    await users.setRole("dana", "user");
    await within(1000, async () => (await b.roles.roleOf("dana")) === "user");
    assert.equal(await users.setRole("nobody", "user"), undefined);
    assert.equal(await users.delete("dana"), true);
    await within(1000, async () => (await b.roles.roleOf("dana")) === undefined);
    assert.equal(await users.delete("dana"), false);
  });

  it("last used: written in batches, never on the request's path", async () => {
    const a = await replica();
    const k = await a.keys.create({ user: "u", name: "n" });
    await a.keys.verify(k.key);
    assert.equal((await a.keys.get(k.id))?.last_used_at, null, "not written by verify itself");
    await (a.keys as RedisApiKeyStore).flush();
    assert.equal(typeof (await a.keys.get(k.id))?.last_used_at, "number");
  });

  it("Redis away: a key verified in the last seconds still works, any other gets the coded 503; back: all work", async () => {
    const a = await replica();
    const [cached, fresh] = [await a.keys.create({ user: "u", name: "cached" }), await a.keys.create({ user: "u", name: "fresh" })];
    assert.ok(await a.keys.verify(cached.key));
    await redis.kill();
    await within(2000, async () => !a.shared.ready);
    assert.ok(await a.keys.verify(cached.key), "fresh in the cache");
    await assert.rejects(Promise.resolve(a.keys.verify(fresh.key)), (err: unknown) => {
      assert.ok(err instanceof InfernoError);
      assert.equal(err.code, "SERVICE_UNAVAILABLE");
      assert.equal(err.details?.reason, "redis_unavailable");
      return true;
    });
    await redis.start();
    await a.shared.waitReady(10_000);
    assert.ok(await a.keys.verify(fresh.key));
  });
});
