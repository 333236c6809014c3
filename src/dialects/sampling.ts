import { z } from "zod";
import { defaultSampling, type GenerateRequest, type SamplingParams } from "../core/generation.js";
import { InfernoError } from "../errors/catalogue.js";

/**
 * The sampling and length fields the native and OpenAI bodies share, with one set of bounds (null means
 * unset, as OpenAI clients send it). Ollama's `options` use the same names with its own looser types.
 */
export const sharedSamplingFields = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).max(1000).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repeat_penalty: z.number().gt(0).max(10).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  // vLLM's and llama-server's; the OpenAI SDK sends them through `extra_body`, which lands at the top level.
  ignore_eos: z.boolean().nullish(),
  min_tokens: z.number().int().min(0).nullish(),
};

/** Sampling fields under the names every dialect shares (OpenAI, Ollama and native all use these). */
export interface SamplingFields {
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  top_k?: number | null | undefined;
  min_p?: number | null | undefined;
  repeat_penalty?: number | null | undefined;
  presence_penalty?: number | null | undefined;
  frequency_penalty?: number | null | undefined;
}

/** Unset fields take the server's defaults on every dialect, so one greedy request gives one text everywhere. */
export function samplingFrom(f: SamplingFields, seed: number | undefined): SamplingParams {
  return {
    temperature: f.temperature ?? defaultSampling.temperature,
    topP: f.top_p ?? defaultSampling.topP,
    topK: f.top_k ?? defaultSampling.topK,
    minP: f.min_p ?? defaultSampling.minP,
    repeatPenalty: f.repeat_penalty ?? defaultSampling.repeatPenalty,
    presencePenalty: f.presence_penalty ?? defaultSampling.presencePenalty,
    frequencyPenalty: f.frequency_penalty ?? defaultSampling.frequencyPenalty,
    ...(seed !== undefined ? { seed } : {}),
  };
}

/** `stop` as a string or a list, empty strings dropped. */
export const stopList = (stop: string | string[] | null | undefined): string[] =>
  (stop == null ? [] : Array.isArray(stop) ? stop : [stop]).filter((s) => s.length > 0);

/** `ignore_eos` and `min_tokens`, named as vLLM and llama-server name them (benchmark clients send them). */
export interface LengthFields {
  ignore_eos?: boolean | null | undefined;
  min_tokens?: number | null | undefined;
}

/** The length controls of the canonical request; a `min_tokens` that `max_tokens` could never reach is refused. */
export function lengthControlsOf(f: LengthFields, maxTokens: number): Pick<GenerateRequest, "ignoreEos" | "minTokens"> {
  const minTokens = f.min_tokens ?? 0;
  if (minTokens > maxTokens) {
    throw new InfernoError("INVALID_REQUEST", `min_tokens ${minTokens} is above max_tokens ${maxTokens}`, { min_tokens: minTokens, max_tokens: maxTokens }, {
      param: "min_tokens",
    });
  }
  return { ...(f.ignore_eos ? { ignoreEos: true } : {}), ...(minTokens > 0 ? { minTokens } : {}) };
}
