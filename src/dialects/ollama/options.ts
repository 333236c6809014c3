import { z } from "zod";
import type { OutputFormat, SamplingParams } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import { checkMaxTokens, type GenerationLimits } from "../../services/generation.js";
import { samplingFrom, stopList } from "../sampling.js";

// Ollama converts JSON numbers into integer options by truncation and skips null values; we do the same.
const int = z.number().transform(Math.trunc).nullish();
const num = z.number().nullish();
const bool = z.boolean().nullish();

/**
 * Ollama's `options`. The ones we map are typed and range-checked; the others Ollama defines (threads,
 * GPU layers, mirostat, ...) are type-checked and ignored, because the server, not the request, owns
 * them. Keys Ollama does not define are ignored too, as Ollama does (it only logs them).
 */
export const ollamaOptions = z
  .looseObject({
    num_predict: int,
    num_ctx: z.number().transform(Math.trunc).pipe(z.number().min(1)).nullish(),
    temperature: z.number().min(0).nullish(),
    top_k: z.number().transform(Math.trunc).pipe(z.number().min(0)).nullish(),
    top_p: z.number().min(0).max(1).nullish(),
    min_p: z.number().min(0).max(1).nullish(),
    seed: int,
    stop: z.union([z.string().max(256), z.array(z.string().max(256)).max(64)]).nullish(),
    repeat_penalty: z.number().gt(0).max(100).nullish(),
    presence_penalty: z.number().min(-100).max(100).nullish(),
    frequency_penalty: z.number().min(-100).max(100).nullish(),
    // Accepted and ignored (the server's configuration decides these):
    num_keep: int, repeat_last_n: int, typical_p: num, tfs_z: num, mirostat: int, mirostat_tau: num, mirostat_eta: num,
    penalize_newline: bool, numa: bool, num_batch: int, num_gpu: int, main_gpu: int, low_vram: bool, f16_kv: bool,
    logits_all: bool, vocab_only: bool, use_mmap: bool, use_mlock: bool, embedding_only: bool, num_thread: int,
  })
  .nullish();
export type OllamaOptions = z.infer<typeof ollamaOptions>;

/** What the options decide for a generation: length, stop strings and sampling (server defaults for the rest). */
export interface OllamaSettings {
  maxTokens: number;
  stop: string[];
  sampling: SamplingParams;
}

/**
 * `num_predict`: absent, -1 ("until done") and -2 ("fill the context") all generate until an
 * end-of-generation token or a full context, capped at the server's `maxTokensLimit`; Ollama's own
 * default is -1, so absent means the same. We never shift the context, so -1 and -2 end alike.
 * A positive value above the limit is refused as on the other dialects; 0 generates nothing.
 */
export function maxTokensOf(numPredict: number | null | undefined, limits: GenerationLimits): number {
  if (numPredict == null || numPredict < 0) return limits.maxTokensLimit;
  return checkMaxTokens(numPredict, limits, "options.num_predict");
}

/**
 * Options → the shared generation settings. Unset sampling options take the server's defaults (the
 * same on every dialect, so greedy output is identical everywhere), not Ollama's (e.g. its 1.1
 * repeat_penalty). A negative seed means random, as in Ollama.
 */
export function settingsOf(options: OllamaOptions, limits: GenerationLimits): OllamaSettings {
  const o = options ?? {};
  return {
    maxTokens: maxTokensOf(o.num_predict, limits),
    stop: stopList(o.stop),
    sampling: samplingFrom(o, o.seed != null && o.seed >= 0 ? o.seed % 2 ** 32 : undefined),
  };
}

/** `format`: "json" (any JSON), a JSON Schema object, or "" / absent (free text). */
export const formatField = z.union([z.string().max(16), z.record(z.string(), z.unknown())]).nullish();

export function formatOf(format: z.infer<typeof formatField>): OutputFormat | undefined {
  if (format == null || format === "") return undefined;
  if (format === "json") return { type: "json" };
  if (typeof format === "string") {
    throw new InfernoError("INVALID_REQUEST", `invalid format '${format}': expected "json" or a JSON schema`, undefined, { param: "format" });
  }
  return { type: "json_schema", schema: format };
}

/** `think`: thinking models only; the models served here have no thinking mode, so only false passes. */
export const thinkField = z.union([z.boolean(), z.enum(["high", "medium", "low"])]).nullish();

export function checkThink(think: z.infer<typeof thinkField>, name: string): void {
  if (think != null && think !== false) {
    throw new InfernoError("INVALID_REQUEST", `"${name}" does not support thinking`, undefined, { param: "think" });
  }
}

export const keepAliveField = z.union([z.string().max(64), z.number()]).nullish();
