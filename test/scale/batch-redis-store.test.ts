// The Redis batch store's exactly-once step (src/batch/redis-batch-store.ts) against a real redis-server:
// a result is stored once however many runs race to store it, the batch ends once, and a cancelled
// batch stays cancelled. Needs no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Redis } from "ioredis";
import { RedisBatchStore } from "../../src/batch/redis-batch-store.js";
import { redisAvailable, startRedis } from "../helpers/redis.js";

test("results are stored once under concurrent runs; the batch ends once; cancel sticks", redisAvailable(), async (t) => {
  const redis = await startRedis();
  const clients = [new Redis(redis.url), new Redis(redis.url)];
  t.after(async () => {
    for (const c of clients) c.disconnect();
    await redis.close();
  });
  const [a, b] = clients.map((c, i) => new RedisBatchStore(c, "test:", `r${i}`)) as [RedisBatchStore, RedisBatchStore];
  const { batch, refs } = await a.create({ model: "m", params: {}, owner: "u", items: [{ id: "x", prompt: "1" }, { id: "y", prompt: "2" }] });
  assert.equal(batch.status, "queued");

  // Two replicas race to store item x, ten times each: one result, one count.
  const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).storeResult(refs[0]!, { result: { text: `run ${i}` } })));
  assert.deepEqual(outcomes.filter((o) => o !== "duplicate"), ["stored"]);
  assert.deepEqual(await b.counts(batch.id), { pending: 1, running: 0, done: 1, error: 0 });
  assert.equal(await a.hasResult(refs[0]!), true);

  // The last item ends the batch once, and queues it for batch.complete.
  const last = await Promise.all([a.storeResult(refs[1]!, { error: { code: "X", message: "m" } }), b.storeResult(refs[1]!, { result: {} })]);
  assert.deepEqual(last.filter((o) => o !== "duplicate"), ["finished"]);
  const ended = (await b.get(batch.id))!;
  assert.equal(ended.status, "completed");
  assert.ok(ended.completedMs !== null);
  assert.deepEqual(await a.finishedUnnotified(), [batch.id]);
  assert.equal((await a.cancel(batch.id))!.status, "completed", "an ended batch is not cancelled");

  // A cancelled batch stays cancelled when its items finish later, and never turns completed.
  const other = await a.create({ model: "m", params: {}, owner: "u", items: [{ id: "z", prompt: "3" }] });
  assert.equal((await b.cancel(other.batch.id))!.status, "cancelled");
  assert.equal(await a.storeResult(other.refs[0]!, { result: {} }), "stored");
  assert.equal((await a.get(other.batch.id))!.status, "cancelled");
  const items = await b.items(batch.id);
  assert.deepEqual(items.map((i) => [i.id, i.status]), [["x", "done"], ["y", items[1]!.status]]);
  assert.ok(["r0", "r1"].includes(items[0]!.replica!));
});
