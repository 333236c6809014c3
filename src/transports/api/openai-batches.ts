// The OpenAI batch API: `POST /v1/batches`, `GET /v1/batches`, `GET /v1/batches/{id}`,
// `POST /v1/batches/{id}/cancel`, on the same durable engine as `/batch` (src/batch/: exactly-once
// results, crash recovery, live traffic first), in SQLite or, with redisUrl, in Redis shared by the
// replicas (openai-batch-backends.ts).
//
// Creating a batch reads its input file and checks every line against the batch's endpoint (schema,
// pre-queue checks, model) before anything is stored: a bad line is a 400 naming it, so a batch never
// sits in `validating` or ends `failed` (OpenAI's status for a file that fails validation). Lines may
// name different models. When the engine ends the batch, the finalizer writes its output and error
// files (openai-batch-finalizer.ts). A batch is visible to its owner and to admins (others get 404).
import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { OpenaiBatch } from "../../batch/openai-batch-store.js";
import { batchItemsOf, checkBatchModels, parseBatchInput } from "../../dialects/openai/batch-input.js";
import { BATCH_ENDPOINTS } from "../../dialects/openai/batch-requests.js";
import type { GenerationLimits } from "../../dialects/native.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { FileBackend } from "../../files/file-store.js";
import { limitKey } from "../../limits/rate-limit.js";
import type { OpenaiBatchBackend } from "./openai-batch-backends.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { ownerOf, visibleFile } from "./openai-files.js";
import { resourceIdParams } from "../../http/params.js";


const createBody = z.object({
  input_file_id: z.string().min(1).max(64),
  endpoint: z.enum(BATCH_ENDPOINTS, { error: `endpoint must be one of ${BATCH_ENDPOINTS.join(", ")}` }),
  completion_window: z.literal("24h", { error: "completion_window must be '24h'" }),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, "metadata holds at most 16 pairs")
    .nullish(),
});

const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).optional(), after: z.string().max(64).optional() });
const unix = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

export interface OpenaiBatchRoutesOptions {
  files: FileBackend;
  /** Where OpenAI batches live and run (SQLite or Redis: openai-batch-backends.ts). */
  backend: OpenaiBatchBackend;
  registry: ModelRegistry;
  limits: GenerationLimits;
}

type Status = "in_progress" | "finalizing" | "completed" | "cancelling" | "cancelled" | "expired";

/** The OpenAI status of a batch (see openai-batch-store.ts). */
function statusOf(b: OpenaiBatch): Status {
  if (b.engineStatus === "queued" || b.engineStatus === "running") return "in_progress";
  const stopped = b.engineStatus === "cancelled";
  if (b.finalizedMs === null) return stopped && b.expiredMs === null ? "cancelling" : "finalizing";
  return b.expiredMs !== null ? "expired" : stopped ? "cancelled" : "completed";
}

export const openaiBatchRoutes: FastifyPluginAsyncZod<OpenaiBatchRoutesOptions> = async (app, opts) => {
  const { files, backend, registry, limits } = opts;

  const visible = async (request: FastifyRequest, id: string): Promise<OpenaiBatch> => {
    const b = await backend.get(id);
    const p = request.principal;
    if (!b || (p?.role !== "admin" && ownerOf(request) !== b.owner)) throw new InfernoError("NOT_FOUND", `batch '${id}' not found`);
    return b;
  };

  const batchObject = async (b: OpenaiBatch) => {
    const status = statusOf(b);
    const counts = await backend.counts(b.id);
    const ended = b.engineStatus !== "queued" && b.engineStatus !== "running";
    const cancelRequested = b.engineStatus === "cancelled" && b.expiredMs === null;
    return {
      id: b.id,
      object: "batch" as const,
      endpoint: b.endpoint,
      errors: null,
      input_file_id: b.inputFileId,
      completion_window: b.completionWindow,
      status,
      output_file_id: b.outputFileId,
      error_file_id: b.errorFileId,
      created_at: unix(b.createdMs),
      // Validation happens before the batch exists, so it is in progress from the start.
      in_progress_at: unix(b.createdMs),
      expires_at: unix(b.expiresMs),
      finalizing_at: ended && !cancelRequested ? unix(b.endedMs) : null,
      completed_at: status === "completed" ? unix(b.finalizedMs) : null,
      failed_at: null,
      expired_at: unix(b.expiredMs),
      cancelling_at: cancelRequested ? unix(b.cancellingMs ?? b.endedMs) : null,
      cancelled_at: status === "cancelled" ? unix(b.finalizedMs) : null,
      request_counts: { total: b.total, completed: counts.done, failed: counts.error },
      metadata: b.metadata,
      ...(b.usage
        ? {
            usage: {
              ...b.usage,
              input_tokens_details: { cached_tokens: 0 },
              output_tokens_details: { reasoning_tokens: 0 },
            },
          }
        : {}),
    };
  };

  app.post("/batches", { schema: { body: createBody }, config: { dialect: "openai" } }, async (request) => {
    const { input_file_id, endpoint, completion_window, metadata } = request.body;
    const file = await visibleFile(files, request, input_file_id);
    if (file.purpose !== "batch") {
      throw new InfernoError("INVALID_REQUEST", `file '${file.id}' has purpose '${file.purpose}', not 'batch'`, undefined, { param: "input_file_id" });
    }
    const items = batchItemsOf(parseBatchInput(await files.read(file.id)), endpoint, limits);
    await checkBatchModels(registry, items);
    const batch = await backend.create({
      items: items.map(({ line: _line, ...item }) => item), endpoint, inputFileId: file.id, completionWindow: completion_window,
      metadata: metadata ?? null, owner: ownerOf(request), usageKey: limitKey(request),
    });
    return batchObject(batch);
  });

  app.get("/batches", { schema: { querystring: listQuery }, config: { dialect: "openai" } }, async (request) => {
    const limit = request.query.limit ?? 20;
    const owner = request.principal?.role === "admin" ? undefined : ownerOf(request);
    const page = await backend.list(owner, request.query.after, limit + 1);
    const data = await Promise.all(page.slice(0, limit).map(batchObject));
    return { object: "list", data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.length > limit };
  });

  app.get("/batches/:id", { schema: { params: resourceIdParams }, config: { dialect: "openai" } }, async (request) =>
    batchObject(await visible(request, request.params.id)),
  );

  app.post("/batches/:id/cancel", { schema: { params: resourceIdParams }, config: { dialect: "openai" } }, async (request) => {
    const { id, owner } = await visible(request, request.params.id);
    const cancelled = await backend.cancel(id);
    request.audit("batch.cancel", id, { api: "openai", owner });
    return batchObject(cancelled);
  });
};
