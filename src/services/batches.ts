// Native batches, for every transport that offers them (`/batch` routes, the MCP tools): the submit
// checks (a text model, max_tokens within the limit, the webhook target), ownership (a batch is visible
// to the user who submitted it and to admins; others get NOT_FOUND) and the status and result views.
import type { Batch, BatchItem } from "../batch/batch-store.js";
import type { Principal } from "../auth/principal.js";
import { toGenerateRequest, type PromptBody } from "../dialects/native.js";
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import type { BatchBackend } from "../transports/api/batch-backends.js";
import { newWebhookSecret } from "../webhooks/signature.js";
import type { Webhooks } from "../webhooks/webhooks.js";
import type { GenerationLimits } from "./generation.js";

/** What the batch operations need: where batches live, the models, the length limits and the webhooks. */
export interface BatchDeps {
  backend: BatchBackend;
  registry: ModelRegistry;
  limits: GenerationLimits;
  webhooks?: Webhooks | undefined;
}

/** A submit as every transport parses it: the native batch body. */
export interface BatchSubmit {
  model: string;
  requests: Array<{ id: string; prompt: string }>;
  /** Sampling fields applied to every item (the native body's top level). */
  params: Omit<PromptBody, "prompt" | "stream">;
  webhookUrl?: string | undefined;
  webhookSecret?: string | undefined;
}

const unix = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

/** Creates a batch owned by `owner`, its tokens charged to `usageKey`; a webhook secret generated here is returned once. */
export async function submitBatch(deps: BatchDeps, req: BatchSubmit, who: { owner: string; usageKey: string }) {
  const entry = await deps.registry.get(req.model);
  if (entry.type !== "gguf") {
    throw new InfernoError("UNSUPPORTED_OPERATION", `model '${req.model}' is a ${entry.type} model and does not generate text`, { model: req.model });
  }
  toGenerateRequest(req.model, { ...req.params, prompt: "" }, deps.limits); // refuses max_tokens over the limit now, not per item
  if (req.webhookUrl !== undefined) await deps.webhooks?.checkTarget(req.webhookUrl);
  const generatedSecret = req.webhookUrl !== undefined && req.webhookSecret === undefined ? newWebhookSecret() : undefined;
  const batch = await deps.backend.create({
    model: req.model, params: req.params, webhookUrl: req.webhookUrl, webhookSecret: req.webhookSecret ?? generatedSecret,
    owner: who.owner, usageKey: who.usageKey, items: req.requests,
  });
  return {
    batch_id: batch.id, status: batch.status, total_requests: batch.total, created: unix(batch.createdMs),
    ...(generatedSecret ? { webhook_secret: generatedSecret } : {}),
  };
}

/** The batch when `principal` may see it; NOT_FOUND otherwise (whether it exists is not told). */
export async function visibleBatch(backend: BatchBackend, principal: Principal | undefined, id: string): Promise<Batch> {
  const batch = await backend.get(id);
  if (!batch || !principal || (principal.role !== "admin" && principal.user !== batch.owner)) throw new InfernoError("NOT_FOUND", `batch '${id}' not found`);
  return batch;
}

/** A batch's status and counts, as `GET /batch/{id}` answers. */
export async function batchStatus(backend: BatchBackend, b: Batch) {
  const counts = await backend.counts(b.id);
  const delivery = b.webhookUrl ? await backend.delivery(b) : null;
  return {
    batch_id: b.id, model: b.model, status: b.status, completed: counts.done, failed: counts.error,
    pending: counts.pending + counts.running, total: b.total, created: unix(b.createdMs), completed_at: unix(b.completedMs),
    results_url: `/batch/${b.id}/results`,
    ...(b.webhookUrl ? { webhook: { url: b.webhookUrl, delivery } } : {}),
  };
}

function itemView(b: Batch, item: BatchItem & { replica?: string }) {
  // In Redis mode, which replica stored the item's result and how many times replicas started it.
  const by = item.replica === undefined ? {} : { replica: item.replica, runs: item.attempts };
  if (item.status === "done") return { id: item.id, status: "completed" as const, result: item.result, ...by };
  if (item.status === "error") return { id: item.id, status: "failed" as const, error: item.error, ...by };
  return { id: item.id, status: b.status === "cancelled" ? ("cancelled" as const) : item.status };
}

/** Every item's outcome so far, as `GET /batch/{id}/results` answers. */
export async function batchResults(backend: BatchBackend, b: Batch) {
  return { batch_id: b.id, status: b.status, results: (await backend.items(b.id)).map((item) => itemView(b, item)) };
}
