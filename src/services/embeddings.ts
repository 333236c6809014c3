// Embeddings, done once for every dialect (native /embeddings, OpenAI /v1/embeddings and its batch
// items, Ollama /api/embed and /api/embeddings): the model's capability, the limits on inputs, truncation,
// `dimensions` and normalisation. Dialects parse their body and frame the vectors.
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { textEncoder } from "./models.js";

/** Inputs one request may embed (OpenAI's limit). */
export const MAX_EMBEDDING_INPUTS = 2048;
/** Tokens one request may embed, all inputs together (OpenAI's limit). */
export const MAX_EMBEDDING_TOKENS = 300_000;

export interface EmbedRequest {
  model: string;
  /** Texts, or token-id arrays; none empty. */
  inputs: ReadonlyArray<string | readonly number[]>;
  /** Cut an input longer than the embedding context to fit (Ollama's default) instead of refusing it. */
  truncate?: boolean;
  /** Keep the first `dimensions` values (then normalised when `normalize` is on). */
  dimensions?: number | undefined;
  /** Scale each vector to unit length (default true). */
  normalize?: boolean;
}

export interface Embeddings {
  vectors: number[][];
  promptTokens: number;
}

/**
 * Unit length (a zero vector stays as it is), in float32 values as the model's own, so that a vector sent
 * as base64 float32 decodes to exactly the one sent as JSON numbers.
 */
export function unitLength(v: number[]): number[] {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm > 0 ? v.map((x) => Math.fround(x / norm)) : v;
}

/** What the service needs from a model that embeds: a GGUF model, or an ONNX sentence encoder. */
export interface Embedder {
  /** Vector length, when known before a run. */
  readonly embeddingSize: number | undefined;
  /** Most tokens one input may have, special tokens included. */
  readonly inputTokenLimit: number;
  tokenize(text: string): number[];
  /** `ids` cut to `inputTokenLimit`, the way the model wants them cut. */
  truncate(ids: number[]): number[];
  embed(inputs: number[][], signal?: AbortSignal): Promise<Embeddings>;
}

/** Embeds every input on the model, or refuses the whole request before computing any. */
export async function embed(registry: ModelRegistry, req: EmbedRequest, signal: AbortSignal): Promise<Embeddings> {
  if (req.inputs.length > MAX_EMBEDDING_INPUTS) {
    throw new InfernoError("INVALID_REQUEST", `${req.inputs.length} inputs is above the limit of ${MAX_EMBEDDING_INPUTS} per request`, undefined, { param: "input" });
  }
  const model: Embedder = await textEncoder(registry, req.model, "embeddings");
  const { dimensions } = req;
  const tooWide = (size: number) =>
    new InfernoError("INVALID_REQUEST", `dimensions ${dimensions} is above model '${req.model}''s ${size}`, undefined, { param: "dimensions" });
  if (dimensions != null && model.embeddingSize !== undefined && dimensions > model.embeddingSize) throw tooWide(model.embeddingSize);
  const limit = model.inputTokenLimit;
  let total = 0;
  const tokens = req.inputs.map((input, i) => {
    if (input.length === 0) throw new InfernoError("INVALID_REQUEST", `input ${i} is empty`, undefined, { param: "input" });
    let ids = typeof input === "string" ? model.tokenize(input) : [...input];
    if (ids.length > limit) {
      if (!req.truncate) {
        throw new InfernoError(
          "CONTEXT_LENGTH_EXCEEDED",
          `input ${i} is ${ids.length} tokens; the model takes at most ${limit}`,
          { index: i, tokens: ids.length, limit },
          { param: "input" },
        );
      }
      ids = model.truncate(ids);
    }
    total += ids.length;
    if (total > MAX_EMBEDDING_TOKENS) {
      throw new InfernoError("INVALID_REQUEST", `the inputs are above the limit of ${MAX_EMBEDDING_TOKENS} tokens per request`, undefined, { param: "input" });
    }
    return ids;
  });
  const { vectors, promptTokens } = await model.embed(tokens, signal);
  if (dimensions != null && vectors[0] && dimensions > vectors[0].length) throw tooWide(vectors[0].length);
  const cut = dimensions == null ? vectors : vectors.map((v) => v.slice(0, dimensions));
  return { vectors: req.normalize === false ? cut : cut.map(unitLength), promptTokens };
}
