// A dynamic batcher in the manner of Triton's: requests that agree on everything but axis 0 wait
// briefly in a queue so that several of them can share one model run. Pure scheduling logic; the
// injected `run` does the tensor concatenation and splitting, so this file never sees a tensor.
//
// Semantics:
// - Items are queued per key (`keyOf`); different keys are never mixed in one batch, and each key's
//   queue is FIFO: a batch is always a prefix of its queue.
// - A batch is the longest prefix whose rows fit in `maxBatchSize`. An item that would overflow
//   starts the next batch; it is never skipped over. An item whose own batchSize is ≥ maxBatchSize
//   forms a batch alone.
// - A batch is ready when it is full (its rows reach maxBatchSize, or the next item would not fit)
//   or when its oldest item has waited `maxQueueDelayMicros`. `maxQueueDelayMicros: 0` makes every
//   queued item ready at once, so a free runner takes whatever is queued.
// - At most `maxConcurrentBatches` (default 1: onnxruntime already spreads one run over intra-op
//   threads) batches run at a time. While they run, new items keep queuing, which is what makes
//   batches grow under load. When a slot frees, the ready batch whose oldest item is oldest starts.
// - `fullAhead` (default 0) more batches may be handed to `run` while every slot is busy, but only full
//   ones: the runner (one session thread) then finds the next batch waiting when it finishes, instead of
//   idling until the main thread has answered the last batch and formed the next. Batches stay as large
//   as without it, since only a full batch goes ahead.
// - Dispatch happens on a microtask, so items submitted in the same tick coalesce even with no delay.
// - An item whose signal aborts while queued leaves the queue and rejects with the abort reason; it
//   never reaches `run`. One that aborts while its batch runs rejects at once with the reason and its
//   result is dropped; the batch goes on for the others. The signal given to `run` aborts only when
//   every item of the batch has aborted.
// - If `run` throws (or returns the wrong number of results), every item of that batch rejects with
//   that error; other batches are unaffected.
// - `close()` rejects queued items with SERVICE_UNAVAILABLE, refuses new ones, and resolves once the
//   running batches have finished (they are not interrupted).
// - Real timers are used by default. Node's timers have ~1 ms granularity, so sub-millisecond delays
//   round up to a millisecond; the delay is a lower bound, never cut short.
import { InfernoError } from "../../errors/catalogue.js";

/** One request: its named inputs and its size along axis 0 (the same for all its batched inputs). */
export interface BatchItem<T> {
  inputs: Record<string, T>;
  batchSize: number;
}

/** How the batcher groups, waits and runs; `now`/`setTimer`/`clearTimer` exist for fake clocks in tests. */
export interface DynamicBatcherOptions<T, R> {
  /** Most rows (sum of batchSize) in one run. */
  maxBatchSize: number;
  /** How long the oldest queued item of a batch may wait for company. */
  maxQueueDelayMicros: number;
  /** Batches running at once; default 1. */
  maxConcurrentBatches?: number;
  /** Full batches that may be handed over beyond maxConcurrentBatches, to wait at the runner; default 0. */
  fullAhead?: number;
  /** Key of everything except axis 0 (dims of each input from axis 1 on + dtypes + requested outputs); only equal keys are coalesced. */
  keyOf(item: BatchItem<T>): string;
  /** Runs one merged batch and returns one result per item, in order; the signal aborts when every item has aborted. */
  run(items: BatchItem<T>[], signal?: AbortSignal): Promise<R[]>;
  /** Monotonic clock in milliseconds; default `performance.now`. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

interface RunningBatch {
  live: number;
  controller: AbortController;
}

interface Pending<T, R> {
  item: BatchItem<T>;
  key: string;
  seq: number;
  deadline: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  batch: RunningBatch | undefined;
  settled: boolean;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

const closedError = (): InfernoError =>
  new InfernoError("SERVICE_UNAVAILABLE", "the model is shutting down; the request was not run");

/** Coalesces same-shaped requests into batches and feeds them to an injected run function. */
export class DynamicBatcher<T, R> {
  private readonly maxBatchSize: number;
  private readonly delayMs: number;
  private readonly maxConcurrent: number;
  private readonly fullAhead: number;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly queues = new Map<string, Pending<T, R>[]>();
  private readonly inFlight = new Set<Promise<void>>();
  private seq = 0;
  private closed = false;
  private pumpScheduled = false;
  private timer: { handle: unknown; at: number } | undefined;

  constructor(private readonly options: DynamicBatcherOptions<T, R>) {
    const { maxBatchSize, maxQueueDelayMicros, maxConcurrentBatches = 1, fullAhead = 0 } = options;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) throw new RangeError(`maxBatchSize must be a positive integer, got ${maxBatchSize}`);
    if (!Number.isFinite(maxQueueDelayMicros) || maxQueueDelayMicros < 0) {
      throw new RangeError(`maxQueueDelayMicros must be a finite number ≥ 0, got ${maxQueueDelayMicros}`);
    }
    if (!Number.isInteger(maxConcurrentBatches) || maxConcurrentBatches < 1) {
      throw new RangeError(`maxConcurrentBatches must be a positive integer, got ${maxConcurrentBatches}`);
    }
    if (!Number.isInteger(fullAhead) || fullAhead < 0) throw new RangeError(`fullAhead must be a non-negative integer, got ${fullAhead}`);
    this.fullAhead = fullAhead;
    this.maxBatchSize = maxBatchSize;
    this.delayMs = maxQueueDelayMicros / 1000;
    this.maxConcurrent = maxConcurrentBatches;
    this.now = options.now ?? (() => performance.now());
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimer ?? ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>));
  }

  /** Items waiting in a queue. */
  get queued(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Batches currently inside `run`. */
  get running(): number {
    return this.inFlight.size;
  }

  /** Resolves with this item's own result once its batch has run. */
  submit(item: BatchItem<T>, signal?: AbortSignal): Promise<R> {
    if (this.closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!Number.isInteger(item.batchSize) || item.batchSize < 0) {
      return Promise.reject(new InfernoError("INVALID_REQUEST", `batch size must be a non-negative integer, got ${item.batchSize}`));
    }
    let key: string;
    try {
      key = this.options.keyOf(item);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<R>((resolve, reject) => {
      const p: Pending<T, R> = {
        item, key, signal, resolve, reject,
        seq: this.seq++,
        deadline: this.now() + this.delayMs,
        onAbort: undefined,
        batch: undefined,
        settled: false,
      };
      if (signal) {
        p.onAbort = () => this.abort(p);
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      const q = this.queues.get(key);
      if (q) q.push(p);
      else this.queues.set(key, [p]);
      this.schedulePump();
    });
  }

  /** Rejects every queued item, refuses new ones, and resolves when running batches have finished. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.disarm();
      const queues = [...this.queues.values()];
      this.queues.clear();
      for (const q of queues) for (const p of q) this.settle(p, () => p.reject(closedError()));
    }
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private abort(p: Pending<T, R>): void {
    if (p.settled) return;
    if (p.batch) {
      // Running: drop the result; only when nobody is left waiting does the run itself hear of it.
      if (--p.batch.live === 0) p.batch.controller.abort(p.signal?.reason);
    } else {
      const q = this.queues.get(p.key);
      const i = q ? q.indexOf(p) : -1;
      if (q && i !== -1) {
        q.splice(i, 1);
        if (q.length === 0) this.queues.delete(p.key);
      }
      this.schedulePump(); // the head may have changed, and with it the timer
    }
    this.settle(p, () => p.reject(p.signal?.reason));
  }

  private settle(p: Pending<T, R>, how: () => void): void {
    if (p.settled) return;
    p.settled = true;
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    how();
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => this.pump(this.now()));
  }

  /** How many items from the head of `q` make the next batch, and whether it can grow no further. */
  private prefix(q: Pending<T, R>[]): { count: number; full: boolean } {
    let rows = 0;
    let count = 0;
    for (const p of q) {
      if (count > 0 && rows + p.item.batchSize > this.maxBatchSize) return { count, full: true };
      rows += p.item.batchSize;
      count++;
      if (rows >= this.maxBatchSize) return { count, full: true };
    }
    return { count, full: false };
  }

  private pump(at: number): void {
    this.pumpScheduled = false;
    while (!this.closed && this.inFlight.size < this.maxConcurrent + this.fullAhead) {
      const ahead = this.inFlight.size >= this.maxConcurrent;
      let best: { q: Pending<T, R>[]; key: string; count: number; seq: number } | undefined;
      for (const [key, q] of this.queues) {
        const head = q[0]!;
        const { count, full } = this.prefix(q);
        if (!full && (ahead || head.deadline > at)) continue;
        if (!best || head.seq < best.seq) best = { q, key, count, seq: head.seq };
      }
      if (!best) break;
      const batch = best.q.splice(0, best.count);
      if (best.q.length === 0) this.queues.delete(best.key);
      this.start(batch);
    }
    this.arm();
  }

  /** Keeps one timer set for the earliest deadline, if a free slot could use it. */
  private arm(): void {
    if (this.closed || this.inFlight.size >= this.maxConcurrent || this.queues.size === 0) return this.disarm();
    let earliest = Infinity;
    for (const q of this.queues.values()) earliest = Math.min(earliest, q[0]!.deadline);
    if (this.timer?.at === earliest) return;
    this.disarm();
    const at = earliest;
    const handle = this.setTimer(() => {
      this.timer = undefined;
      // Timers may fire a hair early against `now`; trust the timer so we don't spin re-arming.
      this.pump(Math.max(this.now(), at));
    }, Math.max(0, Math.ceil(at - this.now())));
    this.timer = { handle, at };
  }

  private disarm(): void {
    if (this.timer) this.clearTimer(this.timer.handle);
    this.timer = undefined;
  }

  private start(batch: Pending<T, R>[]): void {
    const running: RunningBatch = { live: batch.length, controller: new AbortController() };
    for (const p of batch) p.batch = running;
    const done: Promise<void> = this.execute(batch, running.controller.signal).finally(() => {
      this.inFlight.delete(done);
      this.schedulePump();
    });
    this.inFlight.add(done);
  }

  private async execute(batch: Pending<T, R>[], signal: AbortSignal): Promise<void> {
    let results: R[];
    try {
      results = await this.options.run(batch.map((p) => p.item), signal);
      if (!Array.isArray(results) || results.length !== batch.length) {
        const got = Array.isArray(results) ? results.length : typeof results;
        throw new InfernoError("INTERNAL_ERROR", `batch run returned ${got} results for ${batch.length} items`);
      }
    } catch (err) {
      for (const p of batch) this.settle(p, () => p.reject(err));
      return;
    }
    batch.forEach((p, i) => this.settle(p, () => p.resolve(results[i] as R)));
  }
}
