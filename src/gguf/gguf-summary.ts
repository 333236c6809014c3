import type { GgufHeader, GgufTensorInfo, GgufValue } from "./gguf-reader.js";

/** What a model listing shows about a GGUF file. */
export interface GgufSummary {
  architecture: string;
  name?: string;
  /** Sum of tensor element counts. */
  parameters: number;
  context_length?: number;
  embedding_length?: number;
  block_count?: number;
  vocab_size?: number;
  /** llama.cpp file-type name (e.g. "Q4_K_M"), or the dominant tensor type when absent. */
  quantization: string;
  size_bytes: number;
  has_chat_template: boolean;
  chat_template?: string;
  bos_token_id?: number;
  eos_token_id?: number;
  pooling_type?: string;
  /** Present (true) when the file has a classification head (`cls.weight` or `cls.output.weight`), as rerankers do. */
  has_classifier?: true;
}

// llama.cpp's LLAMA_FTYPE_MOSTLY_* names by general.file_type; gaps are ids llama.cpp retired.
const FILE_TYPES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
  10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
  17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS",
  24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS",
  31: "IQ1_M", 32: "BF16", 33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0",
  38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
};
const POOLING_TYPES = ["none", "mean", "cls", "last", "rank"];

function asNumber(v: GgufValue | undefined): number | undefined {
  return typeof v === "number" ? v : undefined;
}

function asString(v: GgufValue | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Element count of an array value, whether materialised or summarised. */
export function ggufArrayLength(v: GgufValue | undefined): number | undefined {
  if (Array.isArray(v)) return v.length;
  if (typeof v === "object") return v.length;
  return undefined;
}

function dominantTensorType(tensors: GgufTensorInfo[]): string {
  const bytes = new Map<string, number>();
  for (const t of tensors) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.nbytes);
  let best = "unknown";
  let most = -1;
  for (const [type, n] of bytes) if (n > most) [best, most] = [type, n];
  return best;
}

/** Condenses a header into the facts a model listing needs. */
export function summarizeGguf(h: GgufHeader): GgufSummary {
  const m = h.metadata;
  const arch = asString(m["general.architecture"]) ?? "unknown";
  const fileType = asNumber(m["general.file_type"]);
  const chatTemplate = asString(m["tokenizer.chat_template"]);
  const pooling = asNumber(m[`${arch}.pooling_type`]);
  const summary: GgufSummary = {
    architecture: arch,
    parameters: h.tensors.reduce((sum, t) => sum + t.elements, 0),
    quantization: (fileType === undefined ? undefined : FILE_TYPES[fileType]) ?? dominantTensorType(h.tensors),
    size_bytes: h.fileSize,
    has_chat_template: chatTemplate !== undefined,
  };
  const optional = {
    name: asString(m["general.name"]),
    context_length: asNumber(m[`${arch}.context_length`]),
    embedding_length: asNumber(m[`${arch}.embedding_length`]),
    block_count: asNumber(m[`${arch}.block_count`]),
    vocab_size: ggufArrayLength(m["tokenizer.ggml.tokens"]) ?? asNumber(m[`${arch}.vocab_size`]),
    chat_template: chatTemplate,
    bos_token_id: asNumber(m["tokenizer.ggml.bos_token_id"]),
    eos_token_id: asNumber(m["tokenizer.ggml.eos_token_id"]),
    pooling_type: pooling === undefined ? undefined : POOLING_TYPES[pooling],
    has_classifier: h.tensors.some((t) => t.name === "cls.weight" || t.name === "cls.output.weight") ? (true as const) : undefined,
  };
  // Absent facts are left out rather than set to undefined, so the summary serialises cleanly.
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) Object.assign(summary, { [k]: v });
  return summary;
}
