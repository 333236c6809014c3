// Random-weight llama GGUFs of a realistic shape, generated in code because no model of that size can
// be downloaded here. Values do not matter for speed or load time; shapes and types do.
import { readGgufHeader } from "../src/gguf/gguf-reader.js";
import { buildGguf, type GgufMetadataEntry, type GgufTensorSpec } from "../test/fixtures/gguf-writer.js";
import { prng } from "../test/fixtures/prng.js";

export interface LlamaShape {
  nEmbd: number;
  nBlocks: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  type: "F16" | "Q8_0";
}

export interface Vocabulary {
  tokens: string[];
  scores: number[];
  types: number[];
  bos: number;
  eos: number;
}

/** The 85M-parameter bench model of issue #13: 768 wide, 12 blocks, FFN 2048, 12 heads, Q8_0. */
export const BENCH_85M: LlamaShape = { nEmbd: 768, nBlocks: 12, nFf: 2048, nHead: 12, nHeadKv: 12, type: "Q8_0" };
/** A 0.5B llama's shape (as Qwen2.5-0.5B's widths), F16: 0.8 GB with a 32k vocabulary. */
export const SHAPE_05B: LlamaShape = { nEmbd: 896, nBlocks: 24, nFf: 4864, nHead: 14, nHeadKv: 2, type: "F16" };

/** A SentencePiece-style vocabulary of `size` tokens: unk, bos, eos, the 256 byte tokens, then pieces. */
export function syntheticVocabulary(size: number): Vocabulary {
  const tokens = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`)];
  while (tokens.length < size) tokens.push(`▁w${tokens.length}`);
  return { tokens, scores: tokens.map(() => 0), types: tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)), bos: 1, eos: 2 };
}

/** The tokenizer of a GGUF file (stories260K's, say), so generated text is readable. */
export async function vocabularyOf(file: string): Promise<Vocabulary> {
  const { metadata } = await readGgufHeader(file, { maxArrayItems: 1 << 20 });
  const list = (key: string) => metadata[key] as Array<string | number>;
  return {
    tokens: list("tokenizer.ggml.tokens") as string[],
    scores: list("tokenizer.ggml.scores") as number[],
    types: list("tokenizer.ggml.token_type") as number[],
    bos: Number(metadata["tokenizer.ggml.bos_token_id"] ?? 1),
    eos: Number(metadata["tokenizer.ggml.eos_token_id"] ?? 2),
  };
}

/**
 * A llama GGUF with seeded random weights. With `zeroEos`, the end-of-sequence token's output row is
 * zero, so greedy decoding runs to max_tokens (benchmarks need fixed-length runs). With `piecesOnly`, so
 * are the rows of every token that is not a normal piece (control, unknown, byte tokens): greedy decoding
 * then emits whole pieces, one stream event per token, as a real model mostly does, instead of random
 * bytes that servers hold back and merge while they are not valid UTF-8.
 */
export function randomLlamaGguf(shape: LlamaShape, vocab: Vocabulary, opts: { seed?: number; zeroEos?: boolean; piecesOnly?: boolean } = {}): Buffer {
  const { nEmbd, nBlocks, nFf, nHead, nHeadKv, type } = shape;
  const nVocab = vocab.tokens.length;
  const rand = prng(opts.seed ?? 7);
  // One random block tiled over each tensor: generation stays fast for a 0.8 GB model.
  const block = Float32Array.from({ length: 1 << 16 }, () => (rand() * 2 - 1) * 0.05);
  const weights = (n: number) => {
    const out = new Float32Array(n);
    for (let at = 0; at < n; at += block.length) out.set(block.subarray(0, Math.min(block.length, n - at)), at);
    return out;
  };
  const t = (name: string, dims: [number, number]): GgufTensorSpec => ({ name, dims, type, data: weights(dims[0] * dims[1]) });
  const norm = (name: string): GgufTensorSpec => ({ name, dims: [nEmbd], type: "F32", data: new Float32Array(nEmbd).fill(1) });
  const nKv = (nEmbd / nHead) * nHeadKv;
  const output = t("output.weight", [nEmbd, nVocab]);
  const zeroRow = (token: number) => (output.data as Float32Array).fill(0, token * nEmbd, (token + 1) * nEmbd);
  if (opts.zeroEos) zeroRow(vocab.eos);
  if (opts.piecesOnly) vocab.types.forEach((type, token) => type !== 1 && zeroRow(token));
  const tensors = [t("token_embd.weight", [nEmbd, nVocab]), norm("output_norm.weight"), output];
  for (let i = 0; i < nBlocks; i++) {
    const p = `blk.${i}`;
    tensors.push(
      norm(`${p}.attn_norm.weight`), t(`${p}.attn_q.weight`, [nEmbd, nEmbd]), t(`${p}.attn_k.weight`, [nEmbd, nKv]),
      t(`${p}.attn_v.weight`, [nEmbd, nKv]), t(`${p}.attn_output.weight`, [nEmbd, nEmbd]), norm(`${p}.ffn_norm.weight`),
      t(`${p}.ffn_gate.weight`, [nEmbd, nFf]), t(`${p}.ffn_up.weight`, [nEmbd, nFf]), t(`${p}.ffn_down.weight`, [nFf, nEmbd]),
    );
  }
  const metadata: GgufMetadataEntry[] = [
    ["general.architecture", "string", "llama"], ["general.name", "string", `random-llama-${nEmbd}x${nBlocks}-${type}`],
    ["general.file_type", "uint32", type === "F16" ? 1 : 7], ["llama.context_length", "uint32", 4096],
    ["llama.embedding_length", "uint32", nEmbd], ["llama.block_count", "uint32", nBlocks], ["llama.feed_forward_length", "uint32", nFf],
    ["llama.attention.head_count", "uint32", nHead], ["llama.attention.head_count_kv", "uint32", nHeadKv],
    ["llama.rope.dimension_count", "uint32", nEmbd / nHead], ["llama.attention.layer_norm_rms_epsilon", "float32", 1e-5],
    ["tokenizer.ggml.model", "string", "llama"],
    ["tokenizer.ggml.tokens", "array", { itemType: "string", items: vocab.tokens }],
    ["tokenizer.ggml.scores", "array", { itemType: "float32", items: vocab.scores }],
    ["tokenizer.ggml.token_type", "array", { itemType: "int32", items: vocab.types }],
    ["tokenizer.ggml.bos_token_id", "uint32", vocab.bos], ["tokenizer.ggml.eos_token_id", "uint32", vocab.eos],
  ];
  return buildGguf({ metadata, tensors });
}
