// Runs native batch items from a BullMQ queue shared by every replica (config redisUrl), beside live
// traffic by the same rules as batch-worker.ts (batchConcurrency items at once per replica, never a
// model's last free sequence, tokens charged to the batch's owner).
//
// Queue `batch-items` (BullMQ prefix `<prefix>bull`), one job per item, job id `<batch id>.<seq>`.
// Any replica takes the next job; BullMQ holds a lock on it (10 s, renewed every 5 s) while it runs.
// Exactly once:
// - at least once: a job leaves the queue only when its processor returns. A replica SIGKILLed mid-item
//   stops renewing its locks; BullMQ's stalled check (every 5 s, on every replica) moves jobs whose
//   lock expired back to waiting, so its items run again on another replica within about 15 s. A
//   processor that throws (server stopping, Redis gone while storing) is retried after 1 s (up to 1000
//   times). Items queued but not yet taken stay in Redis (AOF) whatever happens to the replicas.
// - at most once: the result is written by one Lua script only if the item has none
//   (redis-batch-store.ts); a job that runs again finds it and stores nothing, and a job whose item
//   already has a result is skipped before generating.
// - the batch ends in that same script, once; batch.complete is queued from `batches:notify` under a
//   delivery id derived from the batch, so it is sent once even when two replicas race to queue it.
// A batch created by a replica that died before queuing its jobs is queued again by the sweep (jobs of
// items with results are skipped). Cancel marks the batch in Redis and publishes on `batch:cancel`;
// every replica aborts its running items of that batch, and jobs of a cancelled batch are skipped.
// Redis down: the worker's connection retries forever, so workers pause and resume by themselves.
import { Queue, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../core/logger.js";
import type { GenerationLimits } from "../dialects/native.js";
import { toInfernoError } from "../errors/error-handler.js";
import type { UsageContext } from "../limits/usage-context.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { bullConnections, closeBull } from "../shared/bullmq.js";
import type { SharedRedis } from "../shared/redis.js";
import type { Batch } from "./batch-store.js";
import { hasBatchRoom, runBatchItem, type BatchEvents } from "./batch-worker.js";
import type { ItemRef, RedisBatchStore } from "./redis-batch-store.js";

/** How long a replica may go silent before its running items go to another (lock; checked every half). */
export const ITEM_LOCK_MS = 10_000;
const SWEEP_MS = 1_000;
/** A batch whose jobs are still not all queued after this long was left by a replica that died. */
const REQUEUE_AFTER_MS = 30_000;

export interface RedisBatchWorkerOptions {
  shared: SharedRedis;
  url: string;
  store: RedisBatchStore;
  registry: ModelRegistry;
  limits: GenerationLimits;
  concurrency: number;
  log: Logger;
  usage?: UsageContext;
  /** Queues batch.complete for a batch that ended (idempotent: it may run more than once per batch). */
  onFinished: (batch: Batch) => Promise<void>;
}

interface Running {
  batchId: string;
  model: string;
  controller: AbortController;
}

export class RedisBatchWorker {
  private readonly queue: Queue<ItemRef>;
  private readonly worker: Worker<ItemRef, string>;
  private readonly connections: Redis[];
  private readonly running = new Map<string, Running>();
  /** Batches cancelled lately (here or on another replica), for items waiting for room. */
  private readonly cancelled = new Set<string>();
  private readonly listeners: Array<Partial<BatchEvents>> = [];
  private readonly channel: string;
  private subscriber: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private sweeping = false;

  constructor(private readonly opts: RedisBatchWorkerOptions) {
    const { producer, consumer, all } = bullConnections(opts.url);
    this.connections = all;
    const prefix = `${opts.shared.prefix}bull`;
    this.channel = `${opts.shared.prefix}batch:cancel`;
    this.queue = new Queue("batch-items", { connection: producer, prefix });
    this.queue.on("error", () => {});
    this.worker = new Worker<ItemRef, string>("batch-items", (job) => this.process(job), {
      connection: consumer, prefix, concurrency: opts.concurrency, lockDuration: ITEM_LOCK_MS, stalledInterval: ITEM_LOCK_MS / 2,
      maxStalledCount: 1000, autorun: false,
    });
    this.worker.on("error", () => {});
  }

  /** Adds a listener for item events (`batchFinished` is handled by `onFinished`, fleet-wide). */
  listen(events: Partial<BatchEvents>): void {
    this.listeners.push(events);
  }

  /** Queues a new batch's items (one job each), then marks the batch fully queued. */
  async enqueue(batchId: string, refs: ItemRef[]): Promise<void> {
    for (let i = 0; i < refs.length; i += 1000) {
      await this.queue.addBulk(refs.slice(i, i + 1000).map((ref) => ({
        name: "item", data: ref,
        opts: { jobId: `${ref.batchId}.${ref.seq}`, attempts: 1000, backoff: { type: "fixed", delay: 1_000 }, removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600 } },
      })));
    }
    await this.opts.store.queued(batchId);
  }

  start(): void {
    this.stopping = false;
    void this.worker.run().catch((err: unknown) => this.opts.log.error({ err }, "batch worker stopped"));
    this.subscriber = this.opts.shared.subscriber();
    this.subscriber.on("message", (_channel, batchId: string) => this.abort(batchId, "batch cancelled"));
    void this.subscriber.subscribe(this.channel).catch(() => {});
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  /** Aborts the batch's running items on every replica (the batch is already cancelled in Redis). */
  cancel(batchId: string): void {
    this.abort(batchId, "batch cancelled");
    void this.opts.shared.run((r) => r.publish(this.channel, batchId)).catch(() => {});
  }

  /** Stops taking items (draining); the running ones go on. */
  pause(): void {
    void this.worker.pause(true).catch(() => {});
  }

  /** Aborts the running items (their jobs are retried, here or elsewhere) and closes the queue. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    for (const r of this.running.values()) r.controller.abort(new Error("server stopping"));
    await closeBull(this.worker, this.queue, this.connections, 4_000);
  }

  private abort(batchId: string, why: string): void {
    this.cancelled.add(batchId);
    if (this.cancelled.size > 1000) this.cancelled.delete(this.cancelled.values().next().value!);
    for (const r of this.running.values()) if (r.batchId === batchId) r.controller.abort(new Error(why));
  }

  private async process(job: Job<ItemRef, string>): Promise<string> {
    const { store, registry, limits, usage } = this.opts;
    const ref = job.data;
    const batch = await store.get(ref.batchId);
    if (!batch || (batch.status !== "queued" && batch.status !== "running")) return "skipped";
    if (await store.hasResult(ref)) return "duplicate";
    const request = await store.item(ref);
    if (!request) return "skipped";
    const model = "model" in request ? request.model : batch.model;
    const controller = new AbortController();
    const { signal } = controller;
    // Wait for a sequence live traffic can spare, then take it before anything else can (no await between).
    while (!hasBatchRoom(registry, model, [...this.running.values()].filter((r) => r.model === model).length)) {
      if (this.stopping) throw new Error("server stopping");
      await sleep(100);
      if (this.cancelled.has(batch.id)) return "cancelled";
    }
    this.running.set(job.id!, { batchId: batch.id, model, controller });
    try {
      await store.started(ref);
      const run = async (): Promise<{ ok: Awaited<ReturnType<typeof runBatchItem>> } | { err: ReturnType<typeof toInfernoError> }> => {
        try {
          return { ok: await runBatchItem(registry, limits, { model, params: batch.params, request }, signal) };
        } catch (err) {
          return { err: toInfernoError(err) };
        }
      };
      const out = await (usage && batch.usageKey !== null ? usage.run(batch.usageKey, run) : run());
      // An aborted item has no answer: a stopping server's job runs again; a cancelled batch's is dropped.
      if (signal.aborted) {
        if (this.stopping) throw new Error("server stopping");
        return "cancelled";
      }
      if ("err" in out) {
        if (out.err.status >= 500) this.opts.log.error({ err: out.err.cause ?? out.err, batch: batch.id, item: ref.itemId }, "batch item failed");
      }
      const outcome = await store.storeResult(ref, "ok" in out ? { result: out.ok.stored } : { error: { code: out.err.code, message: out.err.message } });
      const generated = "ok" in out ? out.ok.result : undefined;
      if (outcome !== "duplicate" && generated) {
        for (const l of this.listeners) l.itemCompleted?.({ id: batch.id, model }, ref.itemId, generated);
      }
      if (outcome === "finished") await this.finished(batch.id);
      return outcome;
    } finally {
      this.running.delete(job.id!);
    }
  }

  private async finished(id: string): Promise<void> {
    const batch = await this.opts.store.get(id);
    if (batch) await this.opts.onFinished(batch);
    await this.opts.store.notified(id);
  }

  /** Queues what a replica that died left unqueued: batch.complete of ended batches, jobs of new batches. */
  private async sweep(): Promise<void> {
    if (this.sweeping || !this.opts.shared.ready) return;
    this.sweeping = true;
    try {
      const { store } = this.opts;
      for (const id of await store.finishedUnnotified()) await this.finished(id);
      for (const id of await store.unqueued(Date.now() - REQUEUE_AFTER_MS)) await this.enqueue(id, await store.refs(id));
    } catch (err) {
      if (this.opts.shared.ready) this.opts.log.warn({ err }, "batch sweep failed (will retry)");
    } finally {
      this.sweeping = false;
    }
  }
}
