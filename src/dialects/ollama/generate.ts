import { z } from "zod";
import type { ChatMessage } from "../../core/chat.js";
import type { GenerateRequest, GenerationResult, GenerationStream } from "../../core/generation.js";
import { InfernoError } from "../../errors/catalogue.js";
import type { ModelRegistry } from "../../registry/model-registry.js";
import { startChat, type ChatRequest } from "../../services/chat.js";
import { startGeneration } from "../../services/generation.js";
import type { GenerationLimits } from "../native.js";
import { ns, timestamp } from "./models.js";
import { checkThink, formatField, formatOf, keepAliveField, ollamaOptions, settingsOf, thinkField } from "./options.js";
import { renderTemplate } from "./template.js";

const text = z.string().max(1_000_000).nullish();

export const generateBody = z.object({
  model: z.string().min(1).max(256),
  prompt: text,
  suffix: text,
  system: text,
  template: z.string().max(65536).nullish(),
  raw: z.boolean().nullish(),
  format: formatField,
  options: ollamaOptions,
  stream: z.boolean().nullish(),
  keep_alive: keepAliveField,
  context: z.array(z.number()).max(1_000_000).nullish(),
  images: z.array(z.string()).nullish(),
  think: thinkField,
});
export type GenerateBody = z.infer<typeof generateBody>;

/** When the request started and how long loading the model took, for Ollama's durations. */
export interface Timing {
  startedAt: number;
  loadMs: number;
}

/**
 * Ollama's counters and durations (integer nanoseconds). prompt_eval_duration is the time to the first
 * token (waiting for a sequence, evaluating the prompt, sampling once); eval_duration the rest.
 * prompt_eval_count is the whole prompt as the model sees it, cached prefix included.
 */
export function durationsOf(r: GenerationResult, t: Timing) {
  return {
    total_duration: ns(performance.now() - t.startedAt),
    load_duration: ns(t.loadMs),
    prompt_eval_count: r.promptTokens,
    prompt_eval_duration: ns(r.timeToFirstTokenMs),
    eval_count: r.completionTokens,
    eval_duration: ns(r.totalMs - r.timeToFirstTokenMs),
  };
}

/** Refuses what text models here cannot do, before the model is loaded. */
function checkGenerateBody(body: GenerateBody): void {
  if (body.images?.length) {
    throw new InfernoError("INVALID_REQUEST", `model '${body.model}' is a text model and does not accept images`, undefined, { param: "images" });
  }
  // We return `context: []` (KV-cache tokens are not exported), so a non-empty one came from elsewhere.
  if (body.context?.length) {
    throw new InfernoError("INVALID_REQUEST", "context from an earlier response is not supported: this server returns context: []", undefined, {
      param: "context",
    });
  }
  if (body.suffix && !body.template) {
    throw new InfernoError("INVALID_REQUEST", `model '${body.model}' does not support insert (give a template that uses .Suffix)`, undefined, {
      param: "suffix",
    });
  }
  checkThink(body.think, body.model);
}

/** A generate request converted to the internal types: a prompt as it is, or messages for the chat template. */
export type GeneratePlan = { kind: "prompt"; req: GenerateRequest } | { kind: "chat"; req: ChatRequest };

/**
 * `/api/generate` → the shared request types, with every 400 raised before a model is loaded: `raw`
 * sends the prompt as it is; `template` renders Ollama's Go-template subset to a prompt; otherwise
 * system + prompt go through the model's own chat template.
 */
export function toGeneratePlan(id: string, body: GenerateBody, limits: GenerationLimits): GeneratePlan {
  checkGenerateBody(body);
  const format = formatOf(body.format);
  const settings = { model: id, ...settingsOf(body.options, limits), ...(format ? { format } : {}) };
  const prompt = body.prompt ?? "";
  if (body.raw) return { kind: "prompt", req: { ...settings, prompt } };
  if (body.template) {
    const rendered = renderTemplate(body.template, { System: body.system ?? "", Prompt: prompt, Suffix: body.suffix ?? "" });
    return { kind: "prompt", req: { ...settings, prompt: rendered } };
  }
  const messages: ChatMessage[] = [...(body.system ? [{ role: "system" as const, content: body.system }] : []), { role: "user", content: prompt }];
  return { kind: "chat", req: { ...settings, messages } };
}

/** Starts a plan on the one generation path every dialect shares. */
export async function startPlan(registry: ModelRegistry, plan: GeneratePlan, signal: AbortSignal): Promise<GenerationStream> {
  if (plan.kind === "prompt") return startGeneration(registry, plan.req, signal);
  return (await startChat(registry, plan.req, signal)).stream;
}

/** Streamed pieces and the final object of `/api/generate`. */
export const generateOut = {
  chunk: (model: string, response: string) => ({ model, created_at: timestamp(), response, done: false }),
  done: (model: string, r: GenerationResult, t: Timing, response = "") => ({
    model,
    created_at: timestamp(),
    response,
    done: true,
    done_reason: r.finishReason,
    context: [] as number[],
    ...durationsOf(r, t),
  }),
  /** The answer to a request with no prompt (or no messages): the model was loaded or unloaded. */
  status: (model: string, reason: "load" | "unload", t: Timing) => ({
    model,
    created_at: timestamp(),
    response: "",
    done: true,
    done_reason: reason,
    ...(reason === "load" ? { total_duration: ns(performance.now() - t.startedAt), load_duration: ns(t.loadMs) } : {}),
  }),
};
