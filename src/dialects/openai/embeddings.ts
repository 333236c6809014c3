// OpenAI embeddings: the request schema and the one way a response is built, shared by
// `POST /v1/embeddings` and embeddings batch items (so both answer the same body).
import { z } from "zod";
import { InfernoError } from "../../errors/catalogue.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { textModel } from "../../scheduler/text-generation.js";

const MAX_INPUTS = 2048;
const text = z.string().min(1, "input must not be an empty string").max(1_000_000);
const tokenIds = z.array(z.number().int().min(0)).min(1).max(1_000_000);

export const embeddingsBody = z.object({
  model: z.string().min(1).max(256),
  input: z.union([text, z.array(text).min(1).max(MAX_INPUTS), tokenIds, z.array(tokenIds).min(1).max(MAX_INPUTS)], {
    error: "input must be a string, an array of strings, an array of token ids or an array of token-id arrays, none empty",
  }),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().max(256).nullish(),
});
export type EmbeddingsBody = z.infer<typeof embeddingsBody>;

/** Little-endian float32 bytes in base64, the encoding OpenAI clients decode. */
export const embeddingToBase64 = (v: number[]) => Buffer.from(new Float32Array(v).buffer).toString("base64");

/** A string and a token-id array are one input each. */
function inputsOf(input: EmbeddingsBody["input"]): Array<string | number[]> {
  if (typeof input === "string") return [input];
  if (typeof input[0] === "number") return [input as number[]];
  return input as Array<string | number[]>;
}

/** Embeds every input on the text model and answers OpenAI's `list` of embeddings. */
export async function createEmbeddings(registry: ModelRegistry, body: EmbeddingsBody, signal: AbortSignal) {
  const { model: id, input, encoding_format, dimensions } = body;
  const model = await textModel(registry, id);
  const size = model.embeddingSize;
  if (dimensions != null && dimensions !== size) {
    throw new InfernoError("INVALID_REQUEST", `dimensions must be ${size} for model '${id}' (embeddings cannot be shortened)`, undefined, {
      param: "dimensions",
    });
  }
  const { vectors, promptTokens } = await model.embed(inputsOf(input), signal);
  return {
    object: "list" as const,
    data: vectors.map((v, index) => ({ object: "embedding" as const, embedding: encoding_format === "base64" ? embeddingToBase64(v) : v, index })),
    model: id,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
