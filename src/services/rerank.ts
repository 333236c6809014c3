// Reranking, for every route that offers it (`/v1/rerank` and its aliases, OpenAI batch lines): the
// model's capability, the limits, scoring, ordering and `top_n`. Dialects parse their body and frame the results.
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { textEncoder } from "./models.js";

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
  /** The query with each document, tokenized once: each pair's length as the model sees it, and the run that scores them. */
  rankPairs(query: string, documents: readonly string[]): { lengths: number[]; score: (signal?: AbortSignal) => Promise<number[]> };
}

/** Scores every document against the query, or refuses the whole request before scoring any. */
export async function rerank(registry: ModelRegistry, req: RerankRequest, signal: AbortSignal): Promise<RerankResult> {
  if (req.documents.length > MAX_RERANK_DOCUMENTS) {
    throw new InfernoError("INVALID_REQUEST", `${req.documents.length} documents is above the limit of ${MAX_RERANK_DOCUMENTS} per request`, undefined, { param: "documents" });
  }
  const model: Reranker = await textEncoder(registry, req.model, "reranking");
  const limit = model.inputTokenLimit;
  const { lengths, score } = model.rankPairs(req.query, req.documents);
  let promptTokens = 0;
  lengths.forEach((tokens, i) => {
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
  const scores = await score(signal);
  const results = scores.map((relevanceScore, index) => ({ index, relevanceScore }));
  results.sort((a, b) => b.relevanceScore - a.relevanceScore || a.index - b.index);
  return { results: req.topN == null ? results : results.slice(0, req.topN), promptTokens };
}
