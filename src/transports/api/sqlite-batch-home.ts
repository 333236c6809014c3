// Native and OpenAI batches and their files in the data dir's SQLite database (one server, the default):
// one engine (store and in-process worker) for /batch and /v1/batches, started when the app is ready,
// paused while it drains and stopped before it closes.
import path from "node:path";
import type Database from "better-sqlite3";
import type { FastifyInstance } from "fastify";
import { BatchStore } from "../../batch/batch-store.js";
import { BatchWorker } from "../../batch/batch-worker.js";
import type { GenerationLimits } from "../../dialects/native.js";
import { FileStore } from "../../files/file-store.js";
import type { UsageContext } from "../../limits/usage-context.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { sqliteBatches, type BatchBackend } from "./batch-backends.js";
import { sqliteOpenaiBatches, type OpenaiBatchBackend } from "./openai-batch-backends.js";

export interface SqliteBatchHomeOptions {
  dataDir: string;
  registry: ModelRegistry;
  limits: GenerationLimits;
  concurrency: number;
  usage?: UsageContext;
}

export function sqliteBatchHome(app: FastifyInstance, db: Database.Database, opts: SqliteBatchHomeOptions): { batches: BatchBackend; openai: OpenaiBatchBackend; files: FileStore } {
  const store = new BatchStore(db);
  const worker = new BatchWorker({
    store, registry: opts.registry, limits: opts.limits, concurrency: opts.concurrency, log: app.log.child({ component: "batch" }),
    ...(opts.usage ? { usage: opts.usage } : {}),
  });
  app.addHook("onReady", async () => worker.start());
  app.drainSignal.addEventListener("abort", () => worker.pause(), { once: true });
  app.addHook("preClose", async () => worker.stop());
  const files = new FileStore(db, path.join(opts.dataDir, "files"));
  return { batches: sqliteBatches(store, worker, app.webhooks), openai: sqliteOpenaiBatches(app, { db, files, store, worker }), files };
}
