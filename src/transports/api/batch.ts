// Batch jobs: `POST /batch`, `GET /batch`, `GET /batch/{id}`, `GET /batch/{id}/results`, `DELETE /batch/{id}`.
// Requests are `{id, prompt}`; the native sampling fields (`max_tokens`, `temperature`, ...) at the top
// level apply to every item. A batch is visible to the user who submitted it and to admins (others get
// 404). `webhook_url` gets `batch.complete` (not sent for a cancelled batch) signed with `webhook_secret`;
// when the client gives none, one is generated and returned once, in the submit response. Statuses: `queued` (nothing started),
// `running`, `completed` (every item finished, at least one succeeded), `failed` (every item failed),
// `cancelled`. Cancelling a finished batch changes nothing and answers its status. Storage, exactly-once
// results and crash recovery: src/batch/batch-store.ts; scheduling beside live traffic: batch-worker.ts.
import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { samplingFields, toGenerateRequest, type GenerationLimits } from "../../dialects/native.js";
import { InfernoError } from "../../errors/catalogue.js";
import { limitKey } from "../../limits/rate-limit.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import type { Batch, BatchItem, BatchStore } from "../../batch/batch-store.js";
import type { BatchEvents, BatchWorker } from "../../batch/batch-worker.js";
import { newWebhookSecret } from "../../webhooks/signature.js";
import { deliveryView, type Webhooks } from "../../webhooks/webhooks.js";
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
  /** The engine's store and worker (shared with `/v1/batches`; the app starts and stops the worker). */
  store: BatchStore;
  worker: BatchWorker;
  registry: ModelRegistry;
  limits: GenerationLimits;
  webhooks?: Webhooks;
}

/** Webhook events of the batch worker, written inside the transactions that store results. */
function batchEvents(store: BatchStore, webhooks: Webhooks): BatchEvents {
  return {
    itemCompleted(batch, itemId, r) {
      if (!webhooks.wants("inference.complete")) return;
      webhooks.emit("inference.complete", {
        request_id: `${batch.id}/${itemId}`, batch_id: batch.id, item_id: itemId, model: batch.model, prompt_tokens: r.promptTokens,
        tokens_generated: r.completionTokens, duration_ms: Math.round(r.totalMs), finish_reason: r.finishReason,
      }, { batchId: batch.id });
    },
    batchFinished(b) {
      const counts = store.counts(b.id);
      const data = {
        batch_id: b.id, model: b.model, status: b.status, total: b.total, completed: counts.done, failed: counts.error,
        results_url: `/batch/${b.id}/results`, created: unix(b.createdMs), completed_at: unix(b.completedMs),
      };
      const target = b.webhookUrl && b.webhookSecret ? { url: b.webhookUrl, secret: b.webhookSecret } : undefined;
      webhooks.emit("batch.complete", data, { target, batchId: b.id });
    },
  };
}

export const batchRoutes: FastifyPluginAsyncZod<BatchRoutesOptions> = async (app, { store, worker, registry, limits, webhooks }) => {
  if (webhooks) worker.listen(batchEvents(store, webhooks));

  const visible = (request: FastifyRequest, id: string): Batch => {
    const batch = store.get(id);
    const p = request.principal;
    if (!batch || !p || (p.role !== "admin" && p.user !== batch.owner)) throw new InfernoError("NOT_FOUND", `batch '${id}' not found`);
    return batch;
  };

  const statusView = (b: Batch) => {
    const counts = store.counts(b.id);
    const last = b.webhookUrl && webhooks ? webhooks.store.batchDeliveries(b.id).at(-1) : undefined;
    const delivery = last && webhooks ? deliveryView(last, webhooks.dispatcher.maxAttempts) : null;
    return {
      batch_id: b.id, model: b.model, status: b.status, completed: counts.done, failed: counts.error,
      pending: counts.pending + counts.running, total: b.total, created: unix(b.createdMs), completed_at: unix(b.completedMs),
      results_url: `/batch/${b.id}/results`,
      ...(b.webhookUrl ? { webhook: { url: b.webhookUrl, delivery } } : {}),
    };
  };

  const itemView = (b: Batch, item: BatchItem) => {
    if (item.status === "done") return { id: item.id, status: "completed" as const, result: item.result };
    if (item.status === "error") return { id: item.id, status: "failed" as const, error: item.error };
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
    const batch = store.create({
      model, params, webhookUrl: webhook_url, webhookSecret: webhook_secret ?? generatedSecret,
      owner: request.principal?.user ?? "anonymous", usageKey: limitKey(request), items: requests,
    });
    worker.wake();
    return reply.code(202).send({
      batch_id: batch.id, status: batch.status, total_requests: batch.total, created: unix(batch.createdMs),
      ...(generatedSecret ? { webhook_secret: generatedSecret } : {}),
    });
  });

  app.get("/batch", { schema: { querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }) } }, async (request) => {
    const p = request.principal;
    const owner = p?.role === "admin" ? undefined : (p?.user ?? "anonymous");
    return { batches: store.list(owner, request.query.limit ?? 100).map(statusView) };
  });

  app.get("/batch/:id", { schema: { params: resourceIdParams } }, async (request) => statusView(visible(request, request.params.id)));

  app.get("/batch/:id/results", { schema: { params: resourceIdParams } }, async (request) => {
    const batch = visible(request, request.params.id);
    return { batch_id: batch.id, status: batch.status, results: store.items(batch.id).map((item) => itemView(batch, item)) };
  });

  app.delete("/batch/:id", { schema: { params: resourceIdParams } }, async (request) => {
    const batch = visible(request, request.params.id);
    const after = store.cancel(batch.id) ?? batch;
    worker.cancel(batch.id);
    return statusView(after);
  });
};
