// The rerank request and response of Cohere's and Jina's APIs, as llama-server also serves them:
// `{model, query, documents: [string | {text}], top_n?, return_documents?}` →
// `{id, object: "list", model, results: [{index, relevance_score, document?: {text}}], usage}`, best first.
// One shape for `/v1/rerank`, its aliases and OpenAI batch lines; only the error envelope differs by route.
import { z } from "zod";
import type { ModelRegistry } from "../registry/model-registry.js";
import { MAX_RERANK_DOCUMENTS, rerank } from "../services/rerank.js";
import { openaiId } from "./openai/common.js";

const text = z.string().max(1_000_000);

export const rerankBody = z.object({
  model: z.string().min(1).max(256),
  query: z.string().min(1, "query must not be empty").max(1_000_000),
  documents: z.array(z.union([text, z.object({ text }).passthrough()])).min(1).max(MAX_RERANK_DOCUMENTS),
  top_n: z.number().int().min(1).nullish(),
  return_documents: z.boolean().nullish(),
});
export type RerankBody = z.infer<typeof rerankBody>;

export async function createRerank(registry: ModelRegistry, body: RerankBody, signal: AbortSignal) {
  const documents = body.documents.map((d) => (typeof d === "string" ? d : d.text));
  const { results, promptTokens } = await rerank(registry, { model: body.model, query: body.query, documents, topN: body.top_n ?? undefined }, signal);
  return {
    id: openaiId("rerank"),
    object: "list" as const,
    model: body.model,
    results: results.map(({ index, relevanceScore }) => ({
      index,
      relevance_score: relevanceScore,
      ...(body.return_documents ? { document: { text: documents[index]! } } : {}),
    })),
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
