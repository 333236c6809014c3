// The two homes of OpenAI batches behind `/v1/batches`, as batch-backends.ts for `/batch`: SQLite with the
// in-process worker and finalizer (one server), or Redis with the BullMQ worker (replicas, redisUrl).
import type Database from "better-sqlite3";
import type { FastifyInstance } from "fastify";
import type { BatchStore, ItemCounts, ItemRequest } from "../../batch/batch-store.js";
import type { BatchWorker } from "../../batch/batch-worker.js";
import { OpenaiBatchFinalizer } from "../../batch/openai-batch-finalizer.js";
import { OpenaiBatchStore, type OpenaiBatch } from "../../batch/openai-batch-store.js";
import type { RedisBatchStore } from "../../batch/redis-batch-store.js";
import type { RedisBatchWorker } from "../../batch/redis-batch-worker.js";
import type { RedisOpenaiBatches } from "../../batch/redis-openai-batches.js";
import type { FileStore } from "../../files/file-store.js";
import type { SharedRedis } from "../../shared/redis.js";

const WINDOW_MS = 24 * 3600 * 1000;
/** How often ended batches are finalized and overdue ones expired, besides when a batch ends. */
const SWEEP_MS = 1000;

/** A checked OpenAI batch to create: its lines as engine items, and its OpenAI fields. */
export interface NewOpenaiBatchInput {
  items: Array<{ id: string } & Extract<ItemRequest, { endpoint: string }>>;
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
  owner: string;
  usageKey: string;
}

/** What the `/v1/batches` routes need from wherever OpenAI batches live. */
export interface OpenaiBatchBackend {
  create(input: NewOpenaiBatchInput): Promise<OpenaiBatch>;
  get(id: string): Promise<OpenaiBatch | undefined>;
  list(owner: string | undefined, after: string | undefined, limit: number): Promise<OpenaiBatch[]>;
  counts(id: string): Promise<ItemCounts>;
  /** Asks an active batch to stop (its unfinished items end up in the error file); the batch afterwards. */
  cancel(id: string): Promise<OpenaiBatch>;
}

/** SQLite: the engine batch and its OpenAI row in one transaction; the finalizer sweeps every second. */
export function sqliteOpenaiBatches(app: FastifyInstance, opts: { db: Database.Database; files: FileStore; store: BatchStore; worker: BatchWorker }): OpenaiBatchBackend {
  const { db, files, store, worker } = opts;
  const batches = new OpenaiBatchStore(db);
  const finalizer = new OpenaiBatchFinalizer({ db, store, batches, files, worker, log: app.log.child({ component: "openai-batch" }) });
  worker.listen({
    // Inside the transaction that ends the batch: finalize once it has committed.
    batchFinished: (b) => {
      if (batches.get(b.id)) setImmediate(() => void finalizer.finalize(b.id));
    },
  });
  app.addHook("onReady", async () => finalizer.start(SWEEP_MS));
  app.addHook("preClose", async () => finalizer.stop());
  return {
    create: async (input) => {
      const now = Date.now();
      const id = db.transaction(() => {
        const batch = store.create({ model: input.items[0]!.model, params: {}, owner: input.owner, usageKey: input.usageKey, items: input.items }, now);
        batches.insert({
          id: batch.id, endpoint: input.endpoint, inputFileId: input.inputFileId, completionWindow: input.completionWindow,
          metadata: input.metadata, expiresMs: now + WINDOW_MS,
        });
        return batch.id;
      }).immediate();
      worker.wake();
      return batches.get(id)!;
    },
    get: async (id) => batches.get(id),
    list: async (owner, after, limit) => batches.list(owner, after, limit),
    counts: async (id) => store.counts(id),
    cancel: async (id) => {
      const now = Date.now();
      db.transaction(() => {
        batches.markCancelling(id, now);
        store.cancel(id, now);
      }).immediate();
      worker.cancel(id);
      void finalizer.finalize(id);
      return batches.get(id)!;
    },
  };
}

/** Redis: every call refused with the coded 503 while Redis is unreachable; files are written from `batches:notify`. */
export function redisOpenaiBatches(shared: SharedRedis, store: RedisBatchStore, worker: RedisBatchWorker, batches: RedisOpenaiBatches): OpenaiBatchBackend {
  const run = <T>(f: () => Promise<T>) => shared.run(() => f());
  return {
    create: (input) =>
      run(async () => {
        const { batch, refs } = await store.create({ model: input.items[0]!.model, params: {}, owner: input.owner, usageKey: input.usageKey, items: input.items });
        await batches.insert(batch, {
          endpoint: input.endpoint, inputFileId: input.inputFileId, completionWindow: input.completionWindow, metadata: input.metadata,
          expiresMs: batch.createdMs + WINDOW_MS,
        });
        await worker.enqueue(batch.id, refs);
        return (await batches.get(batch.id))!;
      }),
    get: (id) => run(() => batches.get(id)),
    list: (owner, after, limit) => run(() => batches.list(owner, after, limit)),
    counts: (id) => run(() => store.counts(id)),
    cancel: (id) =>
      run(async () => {
        await batches.markCancelling(id);
        await store.cancel(id);
        worker.cancel(id);
        return (await batches.get(id))!;
      }),
  };
}
