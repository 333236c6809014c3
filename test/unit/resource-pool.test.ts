// Pure logic: the pool that hands a model's sequences to requests.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ResourcePool, WaitingMemory } from "../../src/scheduler/resource-pool.js";
import { InfernoError } from "../../src/errors/catalogue.js";

test("FIFO within a class, live requests ahead of batch work", async () => {
  const pool = new ResourcePool(["seq"]);
  const held = await pool.acquire();
  const order: string[] = [];
  const track = (name: string, p: Promise<string>) => p.then((r) => (order.push(name), r));
  const b1 = track("batch-1", pool.acquire(undefined, { priority: "batch" }));
  const l1 = track("live-1", pool.acquire());
  const b2 = track("batch-2", pool.acquire(undefined, { priority: "batch" }));
  const l2 = track("live-2", pool.acquire());
  assert.equal(pool.waiting, 4);
  pool.release(held);
  for (const p of [l1, l2, b1, b2]) pool.release(await p);
  assert.deepEqual(order, ["live-1", "live-2", "batch-1", "batch-2"]);
  // A free resource does not let batch work jump a waiting live request, nor live jump live.
  assert.equal(pool.available, 1);
});

test("a full queue refuses at once with SERVICE_UNAVAILABLE and retry_after", async () => {
  const pool = new ResourcePool(["seq"], { maxWaiting: 1 });
  const held = await pool.acquire();
  const waiting = pool.acquire();
  await assert.rejects(pool.acquire(), (err: unknown) => err instanceof InfernoError && err.code === "SERVICE_UNAVAILABLE" && err.details?.retry_after === 1);
  pool.release(held);
  pool.release(await waiting);
});

test("a wait longer than the timeout fails with TIMEOUT and leaves the queue", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const pool = new ResourcePool(["seq"], { waitTimeoutMs: 500 });
  const held = await pool.acquire();
  const waiting = pool.acquire();
  assert.equal(pool.waiting, 1);
  t.mock.timers.tick(499);
  assert.equal(pool.waiting, 1);
  t.mock.timers.tick(1);
  await assert.rejects(waiting, (err: unknown) => err instanceof InfernoError && err.code === "TIMEOUT");
  assert.equal(pool.waiting, 0);
  pool.release(held);
  assert.equal(pool.available, 1);
});

test("an aborted waiter leaves no trace; the next one is served", async () => {
  const pool = new ResourcePool(["seq"]);
  const held = await pool.acquire();
  const controller = new AbortController();
  const gone = pool.acquire(controller.signal);
  const next = pool.acquire();
  controller.abort(new Error("client left"));
  await assert.rejects(gone, /client left/);
  assert.equal(pool.waiting, 1);
  pool.release(held);
  assert.equal(await next, "seq");
});

test("waiting requests of every pool share one memory bound: over it they are refused at once, and leaving gives it back", async () => {
  const memory = new WaitingMemory(100);
  const a = new ResourcePool(["a"], { maxWaiting: 10, memory });
  const b = new ResourcePool(["b"], { maxWaiting: 10, memory });
  const heldA = await a.acquire(undefined, { bytes: 1000 }); // a free resource is handed out whatever it holds
  const heldB = await b.acquire();
  const waitA = a.acquire(undefined, { bytes: 60 });
  const controller = new AbortController();
  const waitB = b.acquire(controller.signal, { bytes: 30 });
  assert.equal(memory.usedBytes, 90);
  await assert.rejects(b.acquire(undefined, { bytes: 20 }), (err: unknown) =>
    err instanceof InfernoError && err.code === "SERVICE_UNAVAILABLE" && err.details?.retry_after === 1 && err.details?.queue_memory_bytes === 100);
  assert.equal(memory.usedBytes, 90, "a refused request takes nothing");
  controller.abort(new Error("gone"));
  await assert.rejects(waitB, /gone/);
  assert.equal(memory.usedBytes, 60);
  a.release(heldA);
  assert.equal(await waitA, "a");
  assert.equal(memory.usedBytes, 0, "a request that got its resource no longer counts");
  b.release(heldB);
});
