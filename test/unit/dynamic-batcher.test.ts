// DynamicBatcher: coalescing, delays, key separation, FIFO and per-item results, cancellation,
// errors, concurrency, close(), and a seeded randomized stress. Needs no model: `run` is a fake
// and time is a fake clock driven by hand, so nothing here depends on real timing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DynamicBatcher, type BatchItem, type DynamicBatcherOptions } from "../../src/runtimes/onnx/dynamic-batcher.js";
import { InfernoError } from "../../src/errors/catalogue.js";
import { prng } from "../fixtures/prng.js";

type Item = BatchItem<number[]>;
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class FakeClock {
  t = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  readonly now = (): number => this.t;
  readonly setTimer = (fn: () => void, ms: number): unknown => {
    this.timers.set(this.nextId, { at: this.t + ms, fn });
    return this.nextId++;
  };
  readonly clearTimer = (id: unknown): void => void this.timers.delete(id as number);
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
      await flush();
    }
    this.t = target;
    await flush();
  }
}

interface Call { items: Item[]; signal: AbortSignal | undefined; finish(): void; fail(err: unknown): void }

/** A batcher on a fake clock whose run records each call and waits until the test finishes it. */
function setup(opts: Partial<DynamicBatcherOptions<number[], number[]>> & { auto?: boolean } = {}) {
  const clock = new FakeClock();
  const calls: Call[] = [];
  const batcher = new DynamicBatcher<number[], number[]>({
    maxBatchSize: 4,
    maxQueueDelayMicros: 5000,
    keyOf: (item) => String(item.inputs.k?.[0] ?? 0),
    run: (items, signal) =>
      new Promise((resolve, reject) => {
        const finish = (): void => resolve(items.map((i) => i.inputs.x!.map((v) => v * 10)));
        calls.push({ items, signal, finish, fail: reject });
        if (opts.auto) finish();
      }),
    now: clock.now,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    ...opts,
  });
  return { clock, calls, batcher };
}

/** An item of `rows` rows whose values start at `base`, with key `k`. */
const item = (rows: number, base = 0, k = 0): Item => ({
  inputs: { x: Array.from({ length: rows }, (_, i) => base + i), k: [k] },
  batchSize: rows,
});
const sizes = (c: Call): number[] => c.items.map((i) => i.batchSize);
const expected = (it: Item): number[] => it.inputs.x!.map((v) => v * 10);

describe("DynamicBatcher", () => {
  it("coalesces up to maxBatchSize and dispatches a full batch without waiting", async () => {
    const { calls, batcher } = setup({ auto: true });
    const items = [item(2, 0), item(1, 100), item(1, 200), item(1, 300)];
    const results = items.map((i) => batcher.submit(i));
    await flush();
    assert.equal(calls.length, 1);
    assert.deepEqual(sizes(calls[0]!), [2, 1, 1]);
    assert.equal(batcher.queued, 1);
    for (let i = 0; i < 3; i++) assert.deepEqual(await results[i], expected(items[i]!));
  });

  it("waits for the oldest item's delay, then takes whatever joined meanwhile", async () => {
    const { clock, calls, batcher } = setup({ auto: true, maxBatchSize: 8 });
    const a = batcher.submit(item(1, 0));
    await clock.advance(3);
    const b = batcher.submit(item(2, 10));
    await clock.advance(1);
    assert.equal(calls.length, 0);
    await clock.advance(1);
    assert.equal(calls.length, 1);
    assert.deepEqual(sizes(calls[0]!), [1, 2]);
    assert.deepEqual(await a, [0]);
    assert.deepEqual(await b, [100, 110]);
  });

  it("never exceeds maxBatchSize: an item that would overflow starts the next batch, in order", async () => {
    const { clock, calls, batcher } = setup({ auto: true });
    const items = [item(3, 0), item(2, 10), item(2, 20), item(1, 30)];
    const results = items.map((i) => batcher.submit(i));
    await clock.advance(5);
    assert.deepEqual(calls.map(sizes), [[3], [2, 2], [1]]);
    for (let i = 0; i < items.length; i++) assert.deepEqual(await results[i], expected(items[i]!));
  });

  it("runs an oversize item alone and at once", async () => {
    const { calls, batcher } = setup({ auto: true });
    const big = batcher.submit(item(6, 0));
    void batcher.submit(item(1, 50));
    await flush();
    assert.deepEqual(calls.map(sizes), [[6]]);
    assert.deepEqual(await big, [0, 10, 20, 30, 40, 50]);
    assert.equal(batcher.queued, 1);
  });

  it("never mixes keys, and serves the key with the oldest head first", async () => {
    const { clock, calls, batcher } = setup({ auto: true, maxBatchSize: 16 });
    const items = [item(1, 0, 1), item(1, 10, 2), item(1, 20, 1), item(1, 30, 2)];
    const results = items.map((i) => batcher.submit(i));
    await clock.advance(5);
    assert.deepEqual(calls.map((c) => c.items.map((i) => i.inputs.x![0])), [[0, 20], [10, 30]]);
    for (let i = 0; i < items.length; i++) assert.deepEqual(await results[i], expected(items[i]!));
  });

  it("with no delay, a free runner takes what is queued and batches grow while it is busy", async () => {
    const { calls, batcher } = setup({ maxQueueDelayMicros: 0 });
    batcher.submit(item(1, 0));
    await flush();
    const later = [item(1, 10), item(1, 20), item(1, 30)];
    const results = later.map((i) => batcher.submit(i));
    await flush();
    assert.equal(calls.length, 1);
    assert.equal(batcher.queued, 3);
    calls[0]!.finish();
    await flush();
    assert.deepEqual(calls.map(sizes), [[1], [1, 1, 1]]);
    calls[1]!.finish();
    for (let i = 0; i < later.length; i++) assert.deepEqual(await results[i], expected(later[i]!));
  });

  it("removes an item aborted while queued; it never reaches run and the others are served", async () => {
    const { clock, calls, batcher } = setup({ auto: true });
    const ac = new AbortController();
    const a = batcher.submit(item(1, 0));
    const b = batcher.submit(item(1, 10), ac.signal);
    const c = batcher.submit(item(1, 20));
    ac.abort(new Error("client went away"));
    await assert.rejects(b, /client went away/);
    assert.equal(batcher.queued, 2);
    await clock.advance(5);
    assert.deepEqual(calls.map((x) => x.items.map((i) => i.inputs.x![0])), [[0, 20]]);
    assert.deepEqual(await a, [0]);
    assert.deepEqual(await c, [200]);
    await assert.rejects(batcher.submit(item(1), AbortSignal.abort(new Error("already"))), /already/);
  });

  it("drops the result of an item aborted during its run without disturbing the batch", async () => {
    const { calls, batcher } = setup({ maxQueueDelayMicros: 0 });
    const acs = [new AbortController(), new AbortController()];
    const a = batcher.submit(item(1, 0), acs[0]!.signal);
    const b = batcher.submit(item(1, 10), acs[1]!.signal);
    await flush();
    acs[0]!.abort(new Error("a gone"));
    await assert.rejects(a, /a gone/);
    assert.equal(calls[0]!.signal!.aborted, false);
    calls[0]!.finish();
    assert.deepEqual(await b, [100]);
  });

  it("aborts run's signal only when every item of the batch has aborted", async () => {
    const { calls, batcher } = setup({ maxQueueDelayMicros: 0 });
    const acs = [new AbortController(), new AbortController()];
    const ps = acs.map((ac, i) => batcher.submit(item(1, i), ac.signal));
    await flush();
    acs[0]!.abort();
    assert.equal(calls[0]!.signal!.aborted, false);
    acs[1]!.abort();
    assert.equal(calls[0]!.signal!.aborted, true);
    for (const p of ps) await assert.rejects(p, { name: "AbortError" });
    calls[0]!.fail(new Error("aborted"));
    await batcher.close();
  });

  it("rejects every item of a failed batch with run's error, and only that batch", async () => {
    const { clock, calls, batcher } = setup();
    const first = [batcher.submit(item(2, 0)), batcher.submit(item(2, 10))];
    const second = batcher.submit(item(1, 20));
    await flush();
    const boom = new Error("kernel failed");
    calls[0]!.fail(boom);
    for (const p of first) await assert.rejects(p, (err) => err === boom);
    await clock.advance(5);
    calls[1]!.finish();
    assert.deepEqual(await second, [200]);
  });

  it("rejects a batch whose run returns the wrong number of results", async () => {
    const { batcher } = setup({ maxQueueDelayMicros: 0, run: async () => [[1]] });
    const ps = [batcher.submit(item(1)), batcher.submit(item(1))];
    for (const p of ps) await assert.rejects(p, (err) => err instanceof InfernoError && err.code === "INTERNAL_ERROR");
  });

  it("respects maxConcurrentBatches", async () => {
    const { calls, batcher } = setup({ maxQueueDelayMicros: 0, maxBatchSize: 1, maxConcurrentBatches: 2 });
    const ps = [0, 1, 2, 3, 4].map((i) => batcher.submit(item(1, i)));
    await flush();
    assert.equal(calls.length, 2);
    assert.equal(batcher.running, 2);
    assert.equal(batcher.queued, 3);
    calls[1]!.finish();
    await flush();
    assert.equal(calls.length, 3);
    assert.equal(batcher.running, 2);
    for (const c of calls) c.finish();
    await flush();
    for (const c of calls.slice(3)) c.finish();
    assert.deepEqual(await Promise.all(ps), [[0], [10], [20], [30], [40]]);
    assert.equal(batcher.running, 0);
  });

  it("fullAhead hands over only full batches while the slot is busy, in order, and never more than that many", async () => {
    const { clock, calls, batcher } = setup({ maxBatchSize: 2, maxQueueDelayMicros: 1000, fullAhead: 1 });
    const ps = [0, 1].map((i) => batcher.submit(item(1, i)));
    await flush();
    assert.deepEqual(calls.map(sizes), [[1, 1]], "the first full batch runs");
    ps.push(batcher.submit(item(1, 2)));
    await clock.advance(5);
    assert.equal(calls.length, 1, "a batch that is not full waits for the slot, its delay past or not");
    ps.push(batcher.submit(item(1, 3)));
    await flush();
    assert.deepEqual(calls.map(sizes), [[1, 1], [1, 1]], "once full it goes ahead");
    assert.equal(batcher.running, 2);
    ps.push(...[4, 5].map((i) => batcher.submit(item(1, i))));
    await flush();
    assert.equal(calls.length, 2, "one ahead at most");
    calls[0]!.finish();
    await flush();
    assert.equal(calls.length, 3);
    assert.deepEqual(calls[2]!.items.map((i) => i.inputs.x), [[4], [5]]);
    for (const c of calls.slice(1)) c.finish();
    assert.deepEqual(await Promise.all(ps), [[0], [10], [20], [30], [40], [50]]);
    assert.throws(() => setup({ fullAhead: -1 }), RangeError);
  });

  it("close() rejects queued items with a coded error, waits for running batches, refuses new ones", async () => {
    const { calls, batcher } = setup({ maxQueueDelayMicros: 0 });
    const running = batcher.submit(item(1, 0));
    await flush();
    const queued = batcher.submit(item(1, 10));
    let closed = false;
    const closing = batcher.close().then(() => (closed = true));
    const isClosedError = (err: unknown): boolean => err instanceof InfernoError && err.code === "SERVICE_UNAVAILABLE";
    await assert.rejects(queued, isClosedError);
    await assert.rejects(batcher.submit(item(1)), isClosedError);
    await flush();
    assert.equal(closed, false);
    calls[0]!.finish();
    await closing;
    assert.deepEqual(await running, [0]);
    assert.equal(calls.length, 1);
  });

  it("works on real timers by default", async () => {
    const batcher = new DynamicBatcher<number, number>({
      maxBatchSize: 8,
      maxQueueDelayMicros: 1000,
      keyOf: () => "k",
      run: async (items) => items.map((i) => i.inputs.v! + 1),
    });
    assert.deepEqual(await Promise.all([1, 2].map((v) => batcher.submit({ inputs: { v }, batchSize: 1 }))), [2, 3]);
    await batcher.close();
  });

  it("keeps its invariants under a seeded random load", async () => {
    const rand = prng(0x9e3779b9);
    const pick = (n: number): number => Math.floor(rand() * n);
    const max = 8;
    const limit = 2;
    const { clock, calls, batcher } = setup({ maxBatchSize: max, maxQueueDelayMicros: 2000, maxConcurrentBatches: limit });
    interface Track { it: Item; seq: number; ac: AbortController; aborted?: "queued" | "running"; outcome?: { ok: boolean; value: unknown } }
    const tracks: Track[] = [];
    const open: Call[] = [];
    const failed = new Map<Call, Error>();
    let seen = 0;
    let peak = 0;
    const dispatched = new Set<Item>();
    const lastOfKey = new Map<number, number>();
    const check = (): void => {
      for (const c of calls.slice(seen)) {
        const rows = sizes(c).reduce((a, b) => a + b, 0);
        assert.ok(rows <= max || c.items.length === 1, `batch of ${rows} rows`);
        assert.equal(new Set(c.items.map((i) => i.inputs.k![0])).size, 1, "keys mixed");
        for (const i of c.items) {
          assert.ok(!dispatched.has(i), "item run twice");
          dispatched.add(i);
          const k = i.inputs.k![0]!;
          assert.ok((lastOfKey.get(k) ?? -1) < i.inputs.x![0]!, "FIFO broken within a key");
          lastOfKey.set(k, i.inputs.x![0]!);
        }
        open.push(c);
      }
      seen = calls.length;
      peak = Math.max(peak, batcher.running);
    };
    for (let n = 0; n < 500 || open.length > 0 || batcher.queued > 0; ) {
      const r = rand();
      if (n < 500 && r < 0.5) {
        const t: Track = { it: item(1 + pick(rand() < 0.1 ? max + 2 : 3), n * 100, pick(3)), seq: n++, ac: new AbortController() };
        tracks.push(t);
        batcher.submit(t.it, t.ac.signal).then(
          (value) => (t.outcome = { ok: true, value }),
          (value) => (t.outcome = { ok: false, value }),
        );
      } else if (r < 0.57 && tracks.length > 0) {
        const t = tracks[tracks.length - 1 - pick(Math.min(tracks.length, 20))]!;
        if (!t.outcome && !t.aborted) t.aborted = dispatched.has(t.it) ? "running" : "queued";
        t.ac.abort(new Error(`abort ${t.seq}`));
      } else if (r < 0.72 && open.length > 0) {
        const c = open.splice(pick(open.length), 1)[0]!;
        const err = rand() < 0.05 ? new Error("run failed") : undefined;
        if (err) {
          failed.set(c, err);
          c.fail(err);
        } else c.finish();
      } else {
        await clock.advance(pick(3));
      }
      await flush();
      check();
    }
    await clock.advance(10);
    assert.ok(peak <= limit && peak > 1, `peak concurrency ${peak}`);
    assert.equal(batcher.queued, 0);
    assert.equal(batcher.running, 0);
    const callOf = new Map(calls.flatMap((c) => c.items.map((i) => [i, c] as const)));
    for (const t of tracks) {
      assert.ok(t.outcome, `item ${t.seq} never settled`);
      const call = callOf.get(t.it);
      if (t.aborted) {
        assert.equal(t.outcome.ok, false);
        assert.equal((t.outcome.value as Error).message, `abort ${t.seq}`);
        if (t.aborted === "queued") assert.ok(!call, `item ${t.seq} aborted while queued reached run`);
      } else if (call && failed.has(call)) {
        assert.deepEqual(t.outcome, { ok: false, value: failed.get(call) });
      } else {
        assert.deepEqual(t.outcome, { ok: true, value: expected(t.it) });
      }
    }
    assert.ok(tracks.some((t) => t.aborted === "queued") && tracks.some((t) => t.aborted === "running"), "both abort paths exercised");
    assert.ok(failed.size > 0, "some runs failed");
  });
});
