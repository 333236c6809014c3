// Reranking, for every route that offers it (`/v1/rerank` and its aliases, OpenAI batch lines): the
// model's capability, the limits, scoring, ordering and `top_n`. Dialects parse their body and frame the results.
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { GgufTextModel } from "../runtimes/llama/gguf-text-model.js";
import { OnnxModel } from "../runtimes/onnx/onnx-model.js";
import { capableModel } from "./models.js";

/** Documents one request may rank (Cohere's limit). */
export const MAX_RERANK_DOCUMENTS = 1000;

export interface RerankRequest {
  model: string;
  query: string;
  documents: readonly string[];
  /** Keep the best `topN` results (all when absent). */
  topN?: number | undefined;
}

export interface RerankResult {
  /** The results, best first: each document's index in the request and its relevance (0 to 1). */
  results: Array<{ index: number; relevanceScore: number }>;
  /** Tokens the model evaluated: the query with each document. */
  promptTokens: number;
}

/** What the service needs from a reranker: a GGUF reranker, or an ONNX cross-encoder. */
export interface Reranker {
  /** Most tokens a query-document pair may have, special tokens included. */
  readonly inputTokenLimit: number;
  rankInputTokens(query: string, document: string): number;
  rank(query: string, documents: readonly string[], signal?: AbortSignal): Promise<number[]>;
}

async function reranker(registry: ModelRegistry, id: string): Promise<Reranker> {
  const model = await capableModel(registry, id, "reranking");
  if (model instanceof GgufTextModel) return model;
  if (model instanceof OnnxModel && model.text) return model.text;
  throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' does not rerank`, { model: id, capabilities: model.capabilities });
}

/** Scores every document against the query, or refuses the whole request before scoring any. */
export async function rerank(registry: ModelRegistry, req: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
  if (req.documents.length > MAX_RERANK_DOCUMENTS) {
    throw new InfernoError("INVALID_REQUEST", `${req.documents.length} documents is above the limit of ${MAX_RERANK_DOCUMENTS} per request`, undefined, { param: "documents" });
  }
  const model = await reranker(registry, req.model);
  const limit = model.inputTokenLimit;
  let promptTokens = 0;
  req.documents.forEach((document, i) => {
    const tokens = model.rankInputTokens(req.query, document);
    if (tokens > limit) {
      throw new InfernoError(
        "CONTEXT_LENGTH_EXCEEDED",
        `the query with document ${i} is ${tokens} tokens; the model takes at most ${limit}`,
        { index: i, tokens, limit },
        { param: "documents" },
      );
    }
    promptTokens += tokens;
  });
  const scores = await model.rank(req.query, req.documents, signal);
  const results = scores.map((relevanceScore, index) => ({ index, relevanceScore }));
  results.sort((a, b) => b.relevanceScore - a.relevanceScore || a.index - b.index);
  return { results: req.topN == null ? results : results.slice(0, req.topN), promptTokens };
}
