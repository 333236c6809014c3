// The two homes of native batches behind `/batch`: the data dir's SQLite with the in-process worker (one
// server, the default) and Redis with the BullMQ worker (several replicas, config redisUrl). Routes see
// one async interface; the exactly-once machinery lives in src/batch/ for each.
import type { Batch, BatchItem, BatchStore, ItemCounts, NewBatch } from "../../batch/batch-store.js";
import type { BatchEvents, BatchWorker } from "../../batch/batch-worker.js";
import type { RedisBatchStore } from "../../batch/redis-batch-store.js";
import type { RedisBatchWorker } from "../../batch/redis-batch-worker.js";
import { redisUnavailable, type SharedRedis } from "../../shared/redis.js";
import type { DeliveryStatus, RedisDeliveries } from "../../webhooks/redis-deliveries.js";
import { eventBody } from "../../webhooks/signature.js";
import { deliveryView, type Webhooks } from "../../webhooks/webhooks.js";

/** What the batch routes need from wherever batches live. */
export interface BatchBackend {
  create(input: NewBatch): Promise<Batch>;
  get(id: string): Promise<Batch | undefined>;
  list(owner: string | undefined, limit: number): Promise<Batch[]>;
  counts(id: string): Promise<ItemCounts>;
  items(id: string): Promise<Array<BatchItem & { replica?: string }>>;
  /** Cancels the batch and aborts its running items (on every replica); the batch as it is afterwards. */
  cancel(id: string): Promise<Batch | undefined>;
  /** The latest delivery to the batch's own webhook_url. */
  delivery(b: Batch): Promise<DeliveryStatus | null>;
}

const unix = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

/** The `batch.complete` data of an ended batch. */
export const batchCompleteData = (b: Batch, counts: ItemCounts) => ({
  batch_id: b.id, model: b.model, status: b.status, total: b.total, completed: counts.done, failed: counts.error,
  results_url: `/batch/${b.id}/results`, created: unix(b.createdMs), completed_at: unix(b.completedMs),
});

/** Item events as webhooks (inference.complete of a batch item), the same for both homes. */
export function itemEvents(webhooks: Webhooks): Pick<BatchEvents, "itemCompleted"> {
  return {
    itemCompleted(batch, itemId, r) {
      if (!webhooks.wants("inference.complete")) return;
      webhooks.emit("inference.complete", {
        request_id: `${batch.id}/${itemId}`, batch_id: batch.id, item_id: itemId, model: batch.model, prompt_tokens: r.promptTokens,
        tokens_generated: r.completionTokens, duration_ms: Math.round(r.totalMs), finish_reason: r.finishReason,
      }, { batchId: batch.id });
    },
  };
}

/** SQLite: synchronous transactions; batch.complete is queued inside the one that ends the batch. */
export function sqliteBatches(store: BatchStore, worker: BatchWorker, webhooks: Webhooks | undefined): BatchBackend {
  if (webhooks) {
    worker.listen({
      ...itemEvents(webhooks),
      batchFinished(b) {
        const target = b.webhookUrl && b.webhookSecret ? { url: b.webhookUrl, secret: b.webhookSecret } : undefined;
        webhooks.emit("batch.complete", batchCompleteData(b, store.counts(b.id)), { target, batchId: b.id });
      },
    });
  }
  return {
    create: async (input) => {
      const batch = store.create(input);
      worker.wake();
      return batch;
    },
    get: async (id) => store.get(id),
    list: async (owner, limit) => store.list(owner, limit),
    counts: async (id) => store.counts(id),
    items: async (id) => store.items(id),
    cancel: async (id) => {
      const after = store.cancel(id);
      worker.cancel(id);
      return after;
    },
    delivery: async (b) => {
      const last = webhooks?.store.batchDeliveries(b.id).at(-1);
      return last && webhooks ? deliveryView(last, webhooks.dispatcher.maxAttempts) : null;
    },
  };
}

/** Redis: every call refused with the coded 503 while Redis is unreachable. */
export function redisBatches(shared: SharedRedis, store: RedisBatchStore, worker: RedisBatchWorker, deliveries: RedisDeliveries): BatchBackend {
  const run = <T>(f: () => Promise<T>) => shared.run(() => f());
  return {
    create: (input) =>
      run(async () => {
        const { batch, refs } = await store.create(input);
        try {
          await worker.enqueue(batch.id, refs);
        } catch (err) {
          // Not all queued: the sweep queues the rest (REQUEUE_AFTER_MS); the client may see this batch in GET /batch.
          throw redisUnavailable(err);
        }
        return batch;
      }),
    get: (id) => run(() => store.get(id)),
    list: (owner, limit) => run(() => store.list(owner, limit)),
    counts: (id) => run(() => store.counts(id)),
    items: (id) => run(() => store.items(id)),
    cancel: (id) =>
      run(async () => {
        const after = await store.cancel(id);
        worker.cancel(id);
        return after;
      }),
    delivery: (b) => (b.webhookUrl ? run(() => deliveries.status(batchDeliveryId(b.id))) : Promise.resolve(null)),
  };
}

/** The delivery id of a batch's batch.complete to its own webhook_url: derived, so queueing it twice adds one job. */
export const batchDeliveryId = (batchId: string) => `dlv_${batchId}`;

/** Queues batch.complete of an ended Redis batch: to its webhook_url (fleet-wide, once) and this replica's registered webhooks. */
export function redisBatchFinished(store: RedisBatchStore, deliveries: RedisDeliveries, webhooks: Webhooks | undefined) {
  return async (b: Batch): Promise<void> => {
    if (b.status === "cancelled") return;
    const data = batchCompleteData(b, await store.counts(b.id));
    // The event's own time, so every replica that queues it builds the same bytes.
    const body = eventBody("batch.complete", data, new Date(b.completedMs ?? Date.now()));
    if (b.webhookUrl && b.webhookSecret) {
      await deliveries.add({ id: batchDeliveryId(b.id), url: b.webhookUrl, event: "batch.complete", body, secret: b.webhookSecret });
    }
    for (const hook of webhooks?.list() ?? []) {
      if (hook.events.includes("batch.complete")) {
        await deliveries.add({ id: `${batchDeliveryId(b.id)}_${hook.id}`, url: hook.url, event: "batch.complete", body, secret: hook.secret });
      }
    }
  };
}
