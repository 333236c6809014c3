// Batch jobs: `POST /batch`, `GET /batch`, `GET /batch/{id}`, `GET /batch/{id}/results`, `DELETE /batch/{id}`.
// Requests are `{id, prompt}`; the native sampling fields (`max_tokens`, `temperature`, ...) at the top
// level apply to every item. A batch is visible to the user who submitted it and to admins (others get
// 404). `webhook_url` gets `batch.complete` (not sent for a cancelled batch) signed with `webhook_secret`;
// when the client gives none, one is generated and returned once, in the submit response. Statuses: `queued` (nothing started),
// `running`, `completed` (every item finished, at least one succeeded), `failed` (every item failed),
// `cancelled`. Cancelling a finished batch changes nothing and answers its status. Storage, exactly-once
// results and crash recovery: src/batch/batch-store.ts (one server) or redis-batch-store.ts and
// redis-batch-worker.ts (replicas sharing Redis); scheduling beside live traffic: batch-worker.ts.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { samplingFields, type GenerationLimits } from "../../dialects/native.js";
import { limitKey } from "../../limits/rate-limit.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { batchResults, batchStatus, submitBatch, visibleBatch } from "../../services/batches.js";
import type { Webhooks } from "../../webhooks/webhooks.js";
import type { BatchBackend } from "./batch-backends.js";
import { resourceIdParams } from "../../http/params.js";

/** Most requests in one batch. */
export const MAX_BATCH_ITEMS = 10_000;

export const batchBody = z
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

export interface BatchRoutesOptions {
  /** Where batches live and run: SQLite and the in-process worker, or Redis and BullMQ (batch-backends.ts). */
  backend: BatchBackend;
  registry: ModelRegistry;
  limits: GenerationLimits;
  webhooks?: Webhooks;
}

export const batchRoutes: FastifyPluginAsyncZod<BatchRoutesOptions> = async (app, { backend, registry, limits, webhooks }) => {
  const deps = { backend, registry, limits, webhooks };

  app.post("/batch", { schema: { body: batchBody } }, async (request, reply) => {
    const { model, requests, webhook_url, webhook_secret, ...params } = request.body;
    const owner = request.principal?.user ?? "anonymous";
    const submitted = await submitBatch(deps, { model, requests, params, webhookUrl: webhook_url, webhookSecret: webhook_secret }, { owner, usageKey: limitKey(request) });
    return reply.code(202).send(submitted);
  });

  app.get("/batch", { schema: { querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }) } }, async (request) => {
    const p = request.principal;
    const owner = p?.role === "admin" ? undefined : (p?.user ?? "anonymous");
    return { batches: await Promise.all((await backend.list(owner, request.query.limit ?? 100)).map((b) => batchStatus(backend, b))) };
  });

  app.get("/batch/:id", { schema: { params: resourceIdParams } }, async (request) =>
    batchStatus(backend, await visibleBatch(backend, request.principal, request.params.id)),
  );

  app.get("/batch/:id/results", { schema: { params: resourceIdParams } }, async (request) =>
    batchResults(backend, await visibleBatch(backend, request.principal, request.params.id)),
  );

  app.delete("/batch/:id", { schema: { params: resourceIdParams } }, async (request) => {
    const batch = await visibleBatch(backend, request.principal, request.params.id);
    const cancelled = (await backend.cancel(batch.id)) ?? batch;
    request.audit("batch.cancel", batch.id, { api: "native", owner: batch.owner, status: cancelled.status });
    return batchStatus(backend, cancelled);
  });
};
