// Native and OpenAI batches, their files and batch.complete deliveries on Redis (config redisUrl):
// builds the stores and the BullMQ item worker on the app (batch.complete goes to the fleet's delivery
// queue, src/webhooks/fleet-webhooks.ts), starts the worker when the app is ready,
// pauses the worker while it drains and stops everything before it closes.
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { RedisBatchStore } from "../../batch/redis-batch-store.js";
import { RedisBatchWorker } from "../../batch/redis-batch-worker.js";
import { RedisOpenaiBatches } from "../../batch/redis-openai-batches.js";
import type { GenerationLimits } from "../../dialects/native.js";
import { RedisFileStore } from "../../files/redis-file-store.js";
import type { UsageContext } from "../../limits/usage-context.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { SharedRedis } from "../../shared/redis.js";
import type { RedisDeliveries } from "../../webhooks/redis-deliveries.js";
import { itemEvents, redisBatches, redisBatchFinished, type BatchBackend } from "./batch-backends.js";
import { redisOpenaiBatches, type OpenaiBatchBackend } from "./openai-batch-backends.js";

const EXPIRY_SWEEP_MS = 10_000;

export interface RedisBatchHomeOptions {
  url: string;
  replicaId: string;
  /** The volume every replica mounts (config sharedDataDir, default dataDir): files live in its `files/`. */
  sharedDataDir: string;
  registry: ModelRegistry;
  limits: GenerationLimits;
  concurrency: number;
  usage?: UsageContext;
  /** The fleet's webhook delivery queue (started and closed by the webhooks plugin). */
  deliveries: RedisDeliveries;
}

export function redisBatchHome(app: FastifyInstance, shared: SharedRedis, opts: RedisBatchHomeOptions): { batches: BatchBackend; openai: OpenaiBatchBackend; files: RedisFileStore } {
  const store = new RedisBatchStore(shared.client, shared.prefix, opts.replicaId);
  const files = new RedisFileStore(shared.client, shared.prefix, path.join(opts.sharedDataDir, "files"));
  const openai = new RedisOpenaiBatches(shared.client, shared.prefix, store, files);
  const deliveries = opts.deliveries;
  const notify = redisBatchFinished(store, deliveries, app.webhooks);
  const worker = new RedisBatchWorker({
    shared, url: opts.url, store, registry: opts.registry, limits: opts.limits, concurrency: opts.concurrency,
    log: app.log.child({ component: "batch" }), ...(opts.usage ? { usage: opts.usage } : {}),
    onFinished: async (b) => {
      await notify(b);
      await openai.finalize(b.id);
    },
  });
  worker.listen(itemEvents(app.webhooks));
  // OpenAI batches past their 24 h window: every replica looks, the first one expires them.
  const log = app.log.child({ component: "batch" });
  const expire = () => {
    if (!shared.ready) return;
    openai.expireOverdue().then(
      (ids) => {
        for (const id of ids) {
          worker.cancel(id);
          log.info({ batch: id }, "OpenAI batch expired: its completion window passed");
        }
      },
      (err: unknown) => log.warn({ err }, "OpenAI batch expiry sweep failed (will retry)"),
    );
  };
  let expiry: NodeJS.Timeout | undefined;
  app.addHook("onReady", async () => {
    worker.start();
    expiry = setInterval(expire, EXPIRY_SWEEP_MS).unref();
  });
  app.drainSignal.addEventListener("abort", () => worker.pause(), { once: true });
  app.addHook("preClose", async () => {
    clearInterval(expiry);
    await worker.stop();
  });
  return { batches: redisBatches(shared, store, worker, deliveries), openai: redisOpenaiBatches(shared, store, worker, openai), files };
}
