// The Redis batch store's exactly-once step (src/batch/redis-batch-store.ts) against a real redis-server:
// a result is stored once however many runs race to store it, the batch ends once, and a cancelled
// batch stays cancelled; an OpenAI batch past its completion window expires once. Needs no model.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Redis } from "ioredis";
import { RedisBatchStore } from "../../src/batch/redis-batch-store.js";
import { RedisOpenaiBatches } from "../../src/batch/redis-openai-batches.js";
import { RedisFileStore } from "../../src/files/redis-file-store.js";
import { tempDir } from "../helpers/paths.js";
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

test("OpenAI batches on Redis expire at the end of their window: once, the done items in the output file, the rest batch_expired", redisAvailable(), async (t) => {
  const redis = await startRedis();
  const { dir, cleanup } = await tempDir("inferno-openai-expiry-");
  const clients = [new Redis(redis.url), new Redis(redis.url)];
  t.after(async () => {
    for (const c of clients) c.disconnect();
    await redis.close();
    await cleanup();
  });
  // Two replicas' views of the same Redis.
  const [a, b] = clients.map((c, i) => {
    const store = new RedisBatchStore(c, "test:", `r${i}`);
    return { store, openai: new RedisOpenaiBatches(c, "test:", store, new RedisFileStore(c, "test:", dir)) };
  }) as [{ store: RedisBatchStore; openai: RedisOpenaiBatches }, { store: RedisBatchStore; openai: RedisOpenaiBatches }];
  const fields = { endpoint: "/v1/completions", inputFileId: "file-in", completionWindow: "24h", metadata: null };

  const late = await a.store.create({ model: "m", params: {}, owner: "u", items: [{ id: "x", prompt: "1" }, { id: "y", prompt: "2" }] });
  const t0 = late.batch.createdMs;
  await a.openai.insert(late.batch, { ...fields, expiresMs: t0 + 1_000 });
  const inTime = await a.store.create({ model: "m", params: {}, owner: "u", items: [{ id: "z", prompt: "3" }] });
  await a.openai.insert(inTime.batch, { ...fields, expiresMs: t0 + 1_000 });
  await a.store.storeResult(late.refs[0]!, { result: { text: "done", usage: { prompt_tokens: 1, completion_tokens: 2 } } });
  await a.store.storeResult(inTime.refs[0]!, { result: { text: "in time" } });

  assert.deepEqual(await a.openai.expireOverdue(t0 + 999), [], "not overdue yet");
  assert.equal((await b.openai.get(late.batch.id))!.expiredMs, null);
  // Both replicas sweep: the first one's time sticks; the batch that ended in time is left alone.
  const [first, second] = await Promise.all([a.openai.expireOverdue(t0 + 1_000), b.openai.expireOverdue(t0 + 1_001)]);
  assert.deepEqual([...first, ...second], [late.batch.id]);
  const expired = (await b.openai.get(late.batch.id))!;
  assert.ok(expired.expiredMs === t0 + 1_000 || expired.expiredMs === t0 + 1_001);
  assert.equal(expired.engineStatus, "cancelled");
  assert.equal((await a.openai.get(inTime.batch.id))!.expiredMs, null);
  assert.equal((await a.store.get(inTime.batch.id))!.status, "completed");
  assert.deepEqual(await a.openai.expireOverdue(t0 + 5_000), [], "each batch is looked at once");

  await b.openai.finalize(late.batch.id);
  const done = (await a.openai.get(late.batch.id))!;
  const files = new RedisFileStore(clients[0]!, "test:", dir);
  const output = (await files.read(done.outputFileId!)).toString().trim().split("\n").map((l) => JSON.parse(l));
  const errors = (await files.read(done.errorFileId!)).toString().trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(output.map((l) => l.custom_id), ["x"]);
  assert.deepEqual(errors.map((l) => [l.custom_id, l.error.code]), [["y", "batch_expired"]]);
});
