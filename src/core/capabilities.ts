// What a model can do, typed: derived from its file (and a registration's `mode`), reported by every
// listing, and checked once, with one coded error, before a request reaches a runtime.
import { InfernoError } from "../errors/catalogue.js";

export const CAPABILITIES = ["text-generation", "embeddings", "reranking", "tensor-inference"] as const;
export type Capability = (typeof CAPABILITIES)[number];

/**
 * The load option `mode` narrows a GGUF model to one use, as Docker Model Runner runs its backends in
 * completion, embedding or reranking mode; without it the file decides.
 */
export const MODES = ["completion", "embedding", "reranking"] as const;
export type Mode = (typeof MODES)[number];

const MODE_CAPABILITY: Record<Mode, Capability> = { completion: "text-generation", embedding: "embeddings", reranking: "reranking" };

/**
 * llama.cpp architectures that only encode (no causal language-model head): they embed, never generate.
 * From llama-arch.cpp of the bundled llama.cpp.
 */
const ENCODER_ARCHITECTURES = new Set(["bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert", "neo-bert", "t5encoder"]);

/** The header facts capabilities are derived from (`GgufSummary`). */
export interface GgufCapabilityFacts {
  architecture?: unknown;
  pooling_type?: unknown;
  has_classifier?: unknown;
}

/**
 * A GGUF model's capabilities, from its file: rank pooling with a classification head → reranking (without
 * one, nothing: node-llama-cpp refuses to rank and the pooled output means nothing), other pooling or an encoder-only
 * architecture → embeddings, anything else → text generation and embeddings (llama.cpp can pool a
 * decoder's hidden states). `mode` keeps the one it names (none when the file cannot do it).
 * `textOnly`: the engine serves text generation only (llama-server).
 */
export function ggufCapabilities(facts: GgufCapabilityFacts, mode: Mode | undefined, textOnly = false): Capability[] {
  const fromFile = (): Capability[] => {
    if (facts.pooling_type === "rank") return facts.has_classifier === true ? ["reranking"] : [];
    if (typeof facts.pooling_type === "string" && facts.pooling_type !== "none") return ["embeddings"];
    if (typeof facts.architecture === "string" && ENCODER_ARCHITECTURES.has(facts.architecture)) return ["embeddings"];
    return ["text-generation", "embeddings"];
  };
  // A mode narrows, never widens: a reranker's pooled output is its classifier's score, not an embedding,
  // and a text generator without a head to rank with gives no relevance.
  const all = mode ? fromFile().filter((c) => c === MODE_CAPABILITY[mode]) : fromFile();
  return textOnly ? all.filter((c) => c === "text-generation") : all;
}

const VERB: Record<Capability, string> = {
  "text-generation": "generate text",
  embeddings: "compute embeddings",
  reranking: "rerank documents",
  "tensor-inference": "run tensor inference",
};

/** What a model can do, and why not more when its engine narrows it. */
export interface ModelCapabilities {
  capabilities: readonly Capability[];
  note?: string | undefined;
}

/** The one refusal for a request a model cannot serve: 400 UNSUPPORTED_OPERATION naming what it can do. */
export function requireCapability(model: string, { capabilities, note }: ModelCapabilities, wanted: Capability): void {
  if (capabilities.includes(wanted)) return;
  const can = capabilities.length ? capabilities.join(", ") : "none";
  throw new InfernoError("UNSUPPORTED_OPERATION", `model '${model}' cannot ${VERB[wanted]}; its capabilities: ${can}${note ? ` (${note})` : ""}`, {
    model,
    capability: wanted,
    capabilities,
  });
}
