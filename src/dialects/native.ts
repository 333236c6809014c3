import { z } from "zod";
import { usageOf, type GenerateRequest, type GenerationResult } from "../core/generation.js";
import { checkMaxTokens, type GenerationLimits } from "../services/generation.js";
import { lengthControlsOf, samplingFrom, sharedSamplingFields, stopList } from "./sampling.js";

/** Sampling fields accepted by the native routes (snake_case, as in the API reference). */
export const samplingFields = {
  ...sharedSamplingFields,
  max_tokens: z.number().int().min(1).optional(),
  stop: z.union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(16)]).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  stream: z.boolean().optional(),
};

export const promptBody = z.object({ prompt: z.string().max(1_000_000), ...samplingFields });
export const inferenceBody = promptBody.extend({ model: z.string().min(1).max(256) });
export type PromptBody = z.infer<typeof promptBody>;

export type { GenerationLimits };

/** The canonical request from native fields; other dialects map their own names onto the same shape. */
export function toGenerateRequest(model: string, body: PromptBody, limits: GenerationLimits): GenerateRequest {
  const maxTokens = checkMaxTokens(body.max_tokens ?? limits.defaultMaxTokens, limits);
  return {
    model,
    prompt: body.prompt,
    maxTokens,
    stop: stopList(body.stop),
    sampling: samplingFrom(body, body.seed),
    ...lengthControlsOf(body, maxTokens),
  };
}

/** A single generation's usage. */
export const usageOfOne = (r: GenerationResult) => usageOf(r.promptTokens, [r]);

/** `POST /inference` response, as in the API reference. */
export function inferenceResponse(id: string, model: string, r: GenerationResult) {
  return {
    id,
    model,
    choices: [{ text: r.text, index: 0, finish_reason: r.finishReason }],
    usage: usageOfOne(r),
    created: Math.floor(Date.now() / 1000),
    processing_time_ms: Math.round(r.totalMs),
  };
}

/** `POST /models/{id}/inference` response for a GGUF model, as in runtime-and-apis. */
export function modelInferenceResponse(r: GenerationResult) {
  return {
    text: r.text,
    tokens_generated: r.completionTokens,
    latency_ms: Math.round(r.totalMs * 10) / 10,
    finish_reason: r.finishReason,
    usage: usageOfOne(r),
  };
}

/** SSE events of the native stream: `{token, index}` per chunk, then `{done, finish_reason}`. */
export const nativeSse = {
  chunk: (text: string, index: number) => ({ token: text, index }),
  done: (r: GenerationResult) => ({ done: true, finish_reason: r.finishReason, usage: usageOfOne(r) }),
};
