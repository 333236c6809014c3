import { defaultSampling, type SamplingParams } from "../core/generation.js";

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
