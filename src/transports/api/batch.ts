// Batch jobs: `POST /batch`, `GET /batch`, `GET /batch/{id}`, `GET /batch/{id}/results`, `DELETE /batch/{id}`.
// Requests are `{id, prompt}`; the native sampling fields (`max_tokens`, `temperature`, ...) at the top
// level apply to every item. A batch is visible to the user who submitted it and to admins (others get
// 404). `webhook_url` gets `batch.complete` (not sent for a cancelled batch) signed with `webhook_secret`;
// when the client gives none, one is generated and returned once, in the submit response. Statuses: `queued` (nothing started),
// `running`, `completed` (every item finished, at least one succeeded), `failed` (every item failed),
// `cancelled`. Cancelling a finished batch changes nothing and answers its status. Storage, exactly-once
// results and crash recovery: src/batch/batch-store.ts (one server) or redis-batch-store.ts and
// redis-batch-worker.ts (replicas sharing Redis); scheduling beside live traffic: batch-worker.ts.
import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { samplingFields, toGenerateRequest, type GenerationLimits } from "../../dialects/native.js";
import { InfernoError } from "../../errors/catalogue.js";
import { limitKey } from "../../limits/rate-limit.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { Batch, BatchItem } from "../../batch/batch-store.js";
import { newWebhookSecret } from "../../webhooks/signature.js";
import type { Webhooks } from "../../webhooks/webhooks.js";
import type { BatchBackend } from "./batch-backends.js";
import { resourceIdParams } from "../../http/params.js";

/** Most requests in one batch. */
export const MAX_BATCH_ITEMS = 10_000;

const batchBody = z
  .object(samplingFields)
  .omit({ stream: true })
  .extend({
    model: z.string().min(1).max(256),
    requests: z
      .array(z.object({ id: z.string().min(1).max(256), prompt: z.string().max(1_000_000) }))
      .min(1)
      .max(MAX_BATCH_ITEMS),
    webhook_url: z.string().min(1).max(2048).optional(),
    webhook_secret: z.string().min(16, "webhook_secret must be at least 16 characters").max(256).optional(),
  })
  .superRefine((body, ctx) => {
    const seen = new Set<string>();
    body.requests.forEach((r, i) => {
      if (seen.has(r.id)) ctx.addIssue({ code: "custom", path: ["requests", i, "id"], message: `duplicate request id '${r.id}'` });
      seen.add(r.id);
    });
    if (body.webhook_secret !== undefined && body.webhook_url === undefined) {
      ctx.addIssue({ code: "custom", path: ["webhook_secret"], message: "webhook_secret needs a webhook_url" });
    }
  });

const unix = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

export interface BatchRoutesOptions {
  /** Where batches live and run: SQLite and the in-process worker, or Redis and BullMQ (batch-backends.ts). */
  backend: BatchBackend;
  registry: ModelRegistry;
  limits: GenerationLimits;
  webhooks?: Webhooks;
}

export const batchRoutes: FastifyPluginAsyncZod<BatchRoutesOptions> = async (app, { backend, registry, limits, webhooks }) => {
  const visible = async (request: FastifyRequest, id: string): Promise<Batch> => {
    const batch = await backend.get(id);
    const p = request.principal;
    if (!batch || !p || (p.role !== "admin" && p.user !== batch.owner)) throw new InfernoError("NOT_FOUND", `batch '${id}' not found`);
    return batch;
  };

  const statusView = async (b: Batch) => {
    const counts = await backend.counts(b.id);
    const delivery = b.webhookUrl ? await backend.delivery(b) : null;
    return {
      batch_id: b.id, model: b.model, status: b.status, completed: counts.done, failed: counts.error,
      pending: counts.pending + counts.running, total: b.total, created: unix(b.createdMs), completed_at: unix(b.completedMs),
      results_url: `/batch/${b.id}/results`,
      ...(b.webhookUrl ? { webhook: { url: b.webhookUrl, delivery } } : {}),
    };
  };

  const itemView = (b: Batch, item: BatchItem & { replica?: string }) => {
    // In Redis mode, which replica stored the item's result and how many times replicas started it.
    const by = item.replica === undefined ? {} : { replica: item.replica, runs: item.attempts };
    if (item.status === "done") return { id: item.id, status: "completed" as const, result: item.result, ...by };
    if (item.status === "error") return { id: item.id, status: "failed" as const, error: item.error, ...by };
    return { id: item.id, status: b.status === "cancelled" ? ("cancelled" as const) : item.status };
  };

  app.post("/batch", { schema: { body: batchBody } }, async (request, reply) => {
    const { model, requests, webhook_url, webhook_secret, ...params } = request.body;
    const entry = await registry.get(model);
    if (entry.type !== "gguf") {
      throw new InfernoError("UNSUPPORTED_OPERATION", `model '${model}' is a ${entry.type} model and does not generate text`, { model });
    }
    toGenerateRequest(model, { ...params, prompt: "" }, limits); // refuses max_tokens over the limit now, not per item
    if (webhook_url !== undefined) await webhooks?.checkTarget(webhook_url);
    const generatedSecret = webhook_url !== undefined && webhook_secret === undefined ? newWebhookSecret() : undefined;
    const batch = await backend.create({
      model, params, webhookUrl: webhook_url, webhookSecret: webhook_secret ?? generatedSecret,
      owner: request.principal?.user ?? "anonymous", usageKey: limitKey(request), items: requests,
    });
    return reply.code(202).send({
      batch_id: batch.id, status: batch.status, total_requests: batch.total, created: unix(batch.createdMs),
      ...(generatedSecret ? { webhook_secret: generatedSecret } : {}),
    });
  });

  app.get("/batch", { schema: { querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }) } }, async (request) => {
    const p = request.principal;
    const owner = p?.role === "admin" ? undefined : (p?.user ?? "anonymous");
    return { batches: await Promise.all((await backend.list(owner, request.query.limit ?? 100)).map(statusView)) };
  });

  app.get("/batch/:id", { schema: { params: resourceIdParams } }, async (request) => statusView(await visible(request, request.params.id)));

  app.get("/batch/:id/results", { schema: { params: resourceIdParams } }, async (request) => {
    const batch = await visible(request, request.params.id);
    return { batch_id: batch.id, status: batch.status, results: (await backend.items(batch.id)).map((item) => itemView(batch, item)) };
  });

  app.delete("/batch/:id", { schema: { params: resourceIdParams } }, async (request) => {
    const batch = await visible(request, request.params.id);
    const cancelled = (await backend.cancel(batch.id)) ?? batch;
    request.audit("batch.cancel", batch.id, { api: "native", owner: batch.owner, status: cancelled.status });
    return statusView(cancelled);
  });
};
