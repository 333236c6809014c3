// ONNX text encoders: an `.onnx` with a Hugging Face `tokenizer.json` beside it serves embeddings (a
// sentence encoder: `last_hidden_state` pooled, or `sentence_embedding`) or reranking (a cross-encoder:
// `logits`), tokenized with @huggingface/tokenizers and run through the model's dynamic batcher.
import { promises as fs } from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { InfernoError } from "../../errors/catalogue.js";
import type { OnnxHeader } from "../../onnx/onnx-reader.js";
import type { DecodedTensor } from "./tensor-types.js";

export type OnnxPooling = "mean" | "cls";

/** What the file says about the model as a text encoder (kept in its facts; no paths). */
export interface OnnxTextFacts {
  kind: "embeddings" | "reranking";
  /** The output read: `last_hidden_state`/`token_embeddings` (pooled here), `sentence_embedding`, or `logits`. */
  output: string;
  /** How token vectors become one: from `1_Pooling/config.json` (sentence-transformers), else mean. */
  pooling: OnnxPooling | "none";
  /** The text inputs the graph takes, of input_ids, attention_mask, token_type_ids. */
  inputs: string[];
}

/** Largest tokenizer.json read (XLM-R's is 17 MB). */
const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;
/** Rows per session run for one request's inputs (the dynamic batcher merges runs of equal length). */
const ROWS_PER_RUN = 16;
const TEXT_INPUTS = new Set(["input_ids", "attention_mask", "token_type_ids"]);

/**
 * Where a model's tokenizer files are: `<name>.tokenizer.json` beside `<name>.onnx` (a flat models
 * dir), else `tokenizer.json` in the same folder, else in the parent of a folder named `onnx` (the Hugging
 * Face layout, `onnx/model.onnx`). The same for `tokenizer_config.json` and `1_Pooling/config.json`.
 */
interface TextFiles {
  tokenizer: string;
  config?: string;
  pooling?: string;
}

async function textFiles(onnxPath: string): Promise<TextFiles | undefined> {
  const dir = path.dirname(onnxPath);
  const base = path.basename(onnxPath, path.extname(onnxPath));
  const exists = (f: string) => fs.stat(f).then((s) => s.isFile(), () => false);
  const candidates: Array<[string, string, string]> = [
    [path.join(dir, `${base}.tokenizer.json`), path.join(dir, `${base}.tokenizer_config.json`), path.join(dir, `${base}.pooling.json`)],
    [path.join(dir, "tokenizer.json"), path.join(dir, "tokenizer_config.json"), path.join(dir, "1_Pooling", "config.json")],
  ];
  if (path.basename(dir) === "onnx") {
    const root = path.dirname(dir);
    candidates.push([path.join(root, "tokenizer.json"), path.join(root, "tokenizer_config.json"), path.join(root, "1_Pooling", "config.json")]);
  }
  for (const [tokenizer, config, pooling] of candidates) {
    if (!(await exists(tokenizer))) continue;
    return { tokenizer, ...((await exists(config)) ? { config } : {}), ...((await exists(pooling)) ? { pooling } : {}) };
  }
  return undefined;
}

async function readJson(file: string, what: string): Promise<Record<string, unknown>> {
  const st = await fs.stat(file);
  if (st.size > MAX_TOKENIZER_BYTES) throw new InfernoError("INVALID_MODEL_FILE", `${what} is ${st.size} bytes, above the limit of ${MAX_TOKENIZER_BYTES}`);
  try {
    const value: unknown = JSON.parse(await fs.readFile(file, "utf8"));
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
    return value as Record<string, unknown>;
  } catch (err) {
    throw new InfernoError("INVALID_MODEL_FILE", `${what} is not valid: ${(err as Error).message}`, { reason: "tokenizer" }, { cause: err });
  }
}

const rank = (v: { shape: unknown[] | null }) => v.shape?.length;

/** The model as a text encoder, when it has a tokenizer and the inputs and outputs of one; else undefined. */
export async function onnxTextFacts(onnxPath: string, header: Pick<OnnxHeader, "inputs" | "outputs">): Promise<OnnxTextFacts | undefined> {
  return (await describeText(onnxPath, header))?.facts;
}

/** The facts, and the files they came from (the encoder reads its tokenizer from them). */
async function describeText(onnxPath: string, header: Pick<OnnxHeader, "inputs" | "outputs">): Promise<{ facts: OnnxTextFacts; files: TextFiles } | undefined> {
  const inputs = header.inputs.map((i) => i.name);
  if (!inputs.includes("input_ids") || !inputs.every((n) => TEXT_INPUTS.has(n))) return undefined;
  if (!header.inputs.every((i) => i.type === "int64" && rank(i) === 2)) return undefined;
  const files = await textFiles(onnxPath);
  if (!files) return undefined;
  const out = (name: string, r: number) => header.outputs.find((o) => o.name === name && rank(o) === r);
  let pooling: OnnxPooling = "mean";
  if (files.pooling) {
    const config = await readJson(files.pooling, "the pooling config").catch(() => ({}) as Record<string, unknown>);
    if (config.pooling_mode_cls_token === true) pooling = "cls";
  }
  if (out("logits", 2)) return { files, facts: { kind: "reranking", output: "logits", pooling: "none", inputs } };
  if (out("sentence_embedding", 2)) return { files, facts: { kind: "embeddings", output: "sentence_embedding", pooling: "none", inputs } };
  const hidden = out("last_hidden_state", 3) ?? out("token_embeddings", 3);
  if (hidden) return { files, facts: { kind: "embeddings", output: hidden.name, pooling, inputs } };
  return undefined;
}

/** What the encoder needs from its ONNX model: a run through the model's dynamic batcher. */
export type TensorRunner = (inputs: Record<string, DecodedTensor>, fetches: string[], signal: AbortSignal) => Promise<Record<string, { dims: number[]; data: unknown }>>;

/** An ONNX text encoder ready to embed or rank: the model's session (through `run`) and its tokenizer. */
export class OnnxTextEncoder {
  private constructor(
    private readonly run: TensorRunner,
    private readonly tokenizer: Tokenizer,
    readonly facts: OnnxTextFacts,
    /** Most tokens one input (or query-document pair) may have, special tokens included. */
    readonly inputTokenLimit: number,
    /** Vector length when the graph states it. */
    readonly embeddingSize: number | undefined,
  ) {}

  /** The model's text encoder, or undefined when it is not a text model (no tokenizer, or not a text graph). */
  static async open(onnxPath: string, header: Pick<OnnxHeader, "inputs" | "outputs">, run: TensorRunner, pooling?: OnnxPooling): Promise<OnnxTextEncoder | undefined> {
    const described = await describeText(onnxPath, header);
    if (!described) return undefined;
    const { facts, files } = described;
    const json = await readJson(files.tokenizer, "tokenizer.json");
    const config = files.config ? await readJson(files.config, "tokenizer_config.json") : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
      tokenizer.encode("a");
    } catch (err) {
      throw new InfernoError("INVALID_MODEL_FILE", `tokenizer.json could not be used: ${(err as Error).message}`, { reason: "tokenizer" }, { cause: err });
    }
    const seqDim = header.inputs.find((i) => i.name === "input_ids")?.shape?.[1];
    const configured = typeof config.model_max_length === "number" && config.model_max_length <= 1 << 20 ? config.model_max_length : undefined;
    const limit = typeof seqDim === "number" && seqDim > 0 ? seqDim : (configured ?? 512);
    const dim = header.outputs.find((o) => o.name === facts.output)?.shape?.at(-1);
    const withPooling = facts.pooling === "none" || !pooling ? facts : { ...facts, pooling };
    return new OnnxTextEncoder(run, tokenizer, withPooling, limit, typeof dim === "number" && dim > 0 ? dim : undefined);
  }

  /** Token ids the tokenizer knows, added tokens included. */
  get vocabularySize(): number {
    return (this.vocabSize ??= Math.max(...this.tokenizer.get_vocab(true).values()) + 1);
  }
  private vocabSize: number | undefined;

  tokenize(text: string): number[] {
    return this.tokenizer.encode(text).ids;
  }

  /** Cut to the limit, keeping the closing special token ([SEP], </s>) the model expects last. */
  truncate(ids: number[]): number[] {
    if (ids.length <= this.inputTokenLimit) return ids;
    return [...ids.slice(0, this.inputTokenLimit - 1), ids.at(-1)!];
  }

  async embed(inputs: number[][], signal?: AbortSignal): Promise<{ vectors: number[][]; promptTokens: number }> {
    inputs.forEach((ids, i) => {
      const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= this.vocabularySize);
      if (bad !== undefined) {
        throw new InfernoError("INVALID_REQUEST", `input ${i}: token id ${bad} is not in the vocabulary (0-${this.vocabularySize - 1})`, undefined, { param: "input" });
      }
    });
    const vectors: number[][] = [];
    for (let i = 0; i < inputs.length; i += ROWS_PER_RUN) {
      const rows = inputs.slice(i, i + ROWS_PER_RUN).map((ids) => ({ ids, types: ids.map(() => 0) }));
      const out = await this.runRows(rows, signal);
      vectors.push(...this.pool(out, rows));
    }
    return { vectors, promptTokens: inputs.reduce((n, ids) => n + ids.length, 0) };
  }

  /** The tokens of a query-document pair as the cross-encoder sees them. */
  private pairTokens(query: string, document: string): { ids: number[]; types: number[] } {
    const e = this.tokenizer.encode(query, { text_pair: document, return_token_type_ids: true });
    return { ids: e.ids, types: e.token_type_ids };
  }

  /** Each query-document pair encoded once as the cross-encoder sees it: `lengths`, and the run that scores them. */
  rankPairs(query: string, documents: readonly string[]): { lengths: number[]; score: (signal?: AbortSignal) => Promise<number[]> } {
    const pairs = documents.map((d) => this.pairTokens(query, d));
    return { lengths: pairs.map((p) => p.ids.length), score: (signal) => this.rank(pairs, signal) };
  }

  /** Relevance of each pair: the sigmoid of a one-label head, or the softmax of label 1 of a two-label one. */
  private async rank(pairs: Array<{ ids: number[]; types: number[] }>, signal?: AbortSignal): Promise<number[]> {
    const scores: number[] = [];
    for (let i = 0; i < pairs.length; i += ROWS_PER_RUN) {
      const rows = pairs.slice(i, i + ROWS_PER_RUN);
      const { dims, data } = await this.runRows(rows, signal);
      const labels = dims[1] ?? 1;
      for (let r = 0; r < rows.length; r++) {
        const logits = Array.from({ length: labels }, (_, l) => Number((data as ArrayLike<number>)[r * labels + l]));
        scores.push(labels === 1 ? 1 / (1 + Math.exp(-logits[0]!)) : softmax(logits)[1]!);
      }
    }
    return scores;
  }

  /** One padded run: [rows, longest] int64 inputs, right-padded with id 0 and mask 0. */
  private async runRows(rows: Array<{ ids: number[]; types: number[] }>, signal?: AbortSignal): Promise<{ dims: number[]; data: unknown }> {
    const width = Math.max(...rows.map((r) => r.ids.length));
    const tensor = (pick: (r: { ids: number[]; types: number[] }, j: number) => number): DecodedTensor => {
      const data = new BigInt64Array(rows.length * width);
      rows.forEach((r, i) => {
        for (let j = 0; j < r.ids.length; j++) data[i * width + j] = BigInt(pick(r, j));
      });
      return { type: "int64", dims: [rows.length, width], data };
    };
    const all: Record<string, DecodedTensor> = {
      input_ids: tensor((r, j) => r.ids[j]!),
      attention_mask: tensor(() => 1),
      token_type_ids: tensor((r, j) => r.types[j]!),
    };
    const inputs = Object.fromEntries(this.facts.inputs.map((n) => [n, all[n]!]));
    const out = await this.run(inputs, [this.facts.output], signal ?? new AbortController().signal);
    return out[this.facts.output]!;
  }

  /** One vector per row: the output as it is, or its token vectors pooled over the row's real tokens. */
  private pool(out: { dims: number[]; data: unknown }, rows: Array<{ ids: number[] }>): number[][] {
    const data = out.data as ArrayLike<number>;
    if (this.facts.pooling === "none") {
      const size = out.dims[1]!;
      return rows.map((_, r) => Array.from({ length: size }, (_, k) => data[r * size + k]!));
    }
    const [, width, size] = out.dims as [number, number, number];
    return rows.map((row, r) => {
      const v = new Array<number>(size).fill(0);
      const count = this.facts.pooling === "cls" ? 1 : row.ids.length;
      for (let j = 0; j < count; j++) for (let k = 0; k < size; k++) v[k]! += data[(r * width + j) * size + k]!;
      return v.map((x) => x / count);
    });
  }
}

function softmax(xs: number[]): number[] {
  const max = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}
