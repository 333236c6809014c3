// OpenAI embeddings: the request schema and the one way a response is built, shared by
// `POST /v1/embeddings` and embeddings batch items (so both answer the same body).
import { z } from "zod";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { embed } from "../../services/embeddings.js";
import { embeddingInput, embeddingInputs, embeddingToBase64 } from "../embedding-input.js";

export const embeddingsBody = z.object({
  model: z.string().min(1).max(256),
  input: embeddingInput,
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().max(256).nullish(),
});
export type EmbeddingsBody = z.infer<typeof embeddingsBody>;

/** Embeds every input and answers OpenAI's `list` of embeddings (unit vectors, as OpenAI's are). */
export async function createEmbeddings(registry: ModelRegistry, body: EmbeddingsBody, signal: AbortSignal) {
  const { model, input, encoding_format, dimensions } = body;
  const { vectors, promptTokens } = await embed(registry, { model, inputs: embeddingInputs(input), dimensions: dimensions ?? undefined }, signal);
  return {
    object: "list" as const,
    data: vectors.map((v, index) => ({ object: "embedding" as const, embedding: encoding_format === "base64" ? embeddingToBase64(v) : v, index })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
