import type { GenerateRequest, GenerationStream } from "../core/generation.js";
import { InfernoError } from "../errors/catalogue.js";
import type { GenerationFacts, ModelRegistry } from "../registry/model-registry.js";
import { GgufTextModel, type TextModel } from "../runtimes/llama/gguf-text-model.js";
import { capableModel } from "./models.js";

/** The server's bounds on a generation's length (config defaultMaxTokens, maxTokensLimit). */
export interface GenerationLimits {
  defaultMaxTokens: number;
  maxTokensLimit: number;
}

/** The one max-tokens check of every dialect: `param` names the field the dialect took it from. */
export function checkMaxTokens(maxTokens: number, limits: GenerationLimits, param = "max_tokens"): number {
  if (maxTokens > limits.maxTokensLimit) {
    const field = param.split(".").at(-1);
    throw new InfernoError("INVALID_REQUEST", `${field} ${maxTokens} is above this server's limit of ${limits.maxTokensLimit}`, { max_tokens_limit: limits.maxTokensLimit }, { param });
  }
  return maxTokens;
}

/** The loaded GGUF model for an id that can generate text (capableModel), loading it on first use. */
export async function textModel(registry: ModelRegistry, id: string): Promise<TextModel> {
  const model = await capableModel(registry, id, "text-generation");
  if (model instanceof GgufTextModel) return model;
  throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' is a ${model.type} model, not a GGUF one`, { model: id, capabilities: model.capabilities });
}

/** The one generation path every dialect uses: resolve the model, wait for a sequence, stream tokens. */
export async function startGeneration(registry: ModelRegistry, req: GenerateRequest, signal: AbortSignal): Promise<GenerationStream> {
  const model = await textModel(registry, req.model);
  return startObserved(registry, model, req, signal);
}

/** Starts a request on a loaded model and tells the registry's observers its queue wait and, at the end, its result. */
export async function startObserved(
  registry: ModelRegistry, model: TextModel, req: GenerateRequest, signal: AbortSignal, operation: GenerationFacts["operation"] = "text_completion",
): Promise<GenerationStream> {
  const waitStarted = performance.now();
  const stream = await model.start(req, signal);
  const queueMs = performance.now() - waitStarted;
  registry.emit({ kind: "queue", model: req.model, ms: queueMs });
  return observeStream(registry, req.model, stream, { operation, maxTokens: req.maxTokens, temperature: req.sampling.temperature, queueMs });
}

/**
 * Emits "generation" once, when the stream returns its result. It patches `next` on the stream itself
 * (no wrapping generator, so `return()` and its sequence release are untouched): a token costs one
 * `.then` and a flag check, nothing more.
 */
export function observeStream(registry: ModelRegistry, model: string, stream: GenerationStream, request?: GenerationFacts): GenerationStream {
  const next = stream.next.bind(stream);
  let reported = false;
  stream.next = (...args) =>
    next(...args).then((step) => {
      if (step.done && !reported && step.value) {
        reported = true;
        registry.emit({ kind: "generation", model, result: step.value, request });
      }
      return step;
    });
  return stream;
}
