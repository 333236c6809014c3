// One request of an OpenAI batch, run as its live route runs it without streaming, so a batch item's
// response body is the body the live endpoint would have answered (same builders, same checks).
import type { GenerationResult } from "../../core/generation.js";
import { firstEager } from "../../core/stream-utils.js";
import { InfernoError } from "../../errors/catalogue.js";
import { parseBody } from "../../errors/error-handler.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { startChat } from "../../services/chat.js";
import type { GenerationLimits } from "../native.js";
import { chatCompletionBody, toChatRequest } from "./chat.js";
import { chatCompletionOf } from "./chat-response.js";
import { checkCompletionBody, completionBody, startCompletions, textCompletionOf } from "./completions.js";
import { createRerank, rerankBody } from "../rerank.js";
import { createEmbeddings, embeddingsBody } from "./embeddings.js";

/** The endpoints a batch may call (one per batch, as OpenAI requires). */
export const BATCH_ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank"] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** Each endpoint's request body, as its route declares it. */
export const batchBodySchemas = {
  "/v1/chat/completions": chatCompletionBody,
  "/v1/completions": completionBody,
  "/v1/embeddings": embeddingsBody,
  "/v1/rerank": rerankBody,
} as const satisfies Record<BatchEndpoint, unknown>;

/**
 * At submission, refuses a (schema-valid) body that would fail every time it ran: streaming, and what
 * the live routes refuse before queueing (max_tokens over the limit, best_of other than n, ...).
 */
export function checkBatchBody(endpoint: BatchEndpoint, body: Record<string, unknown>, limits: GenerationLimits): void {
  if (body.stream === true) throw new InfernoError("INVALID_REQUEST", "stream is not supported in a batch", undefined, { param: "stream" });
  if (endpoint === "/v1/chat/completions") toChatRequest(parseBody(chatCompletionBody, body), limits);
  else if (endpoint === "/v1/completions") checkCompletionBody(parseBody(completionBody, body), limits);
}

/** Runs one request body against its endpoint; `results` are its generations (none for embeddings and reranking). */
export async function runBatchRequest(
  registry: ModelRegistry,
  limits: GenerationLimits,
  endpoint: string,
  raw: Record<string, unknown>,
  signal: AbortSignal,
): Promise<{ body: Record<string, unknown>; results: GenerationResult[] }> {
  // Its own controller, so a failing choice stops the item's other choices without looking like a
  // cancel to the worker (which watches `signal` to tell an abort from a failure).
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  try {
    switch (endpoint) {
      case "/v1/chat/completions": {
        const body = parseBody(chatCompletionBody, raw);
        const lazy = await firstEager((i) => startChat(registry, toChatRequest(body, limits, i), controller.signal));
        const { response, results } = await chatCompletionOf(body, lazy);
        return { body: response, results };
      }
      case "/v1/completions": {
        const body = parseBody(completionBody, raw);
        const { prompts, lazy } = await startCompletions(registry, body, limits, controller.signal);
        const { response, results } = await textCompletionOf(body, prompts, lazy);
        return { body: response, results };
      }
      case "/v1/embeddings":
        return { body: await createEmbeddings(registry, parseBody(embeddingsBody, raw), controller.signal), results: [] };
      case "/v1/rerank":
        return { body: await createRerank(registry, parseBody(rerankBody, raw), controller.signal), results: [] };
      default:
        throw new InfernoError("INVALID_REQUEST", `endpoint '${endpoint}' cannot be batched`, undefined, { param: "url" });
    }
  } catch (err) {
    controller.abort(err);
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
