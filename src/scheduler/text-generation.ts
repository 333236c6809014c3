import type { GenerateRequest, GenerationStream } from "../core/generation.js";
import { InfernoError } from "../errors/catalogue.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import { GgufTextModel, type TextModel } from "../runtimes/llama/gguf-text-model.js";

/** The loaded text model for an id (loading it on first use), or a coded error for a model that is not one. */
export async function textModel(registry: ModelRegistry, id: string): Promise<TextModel> {
  const loaded = await registry.acquire(id);
  if (!(loaded instanceof GgufTextModel)) {
    throw new InfernoError("UNSUPPORTED_OPERATION", `model '${id}' is a ${loaded.type} model and does not generate text`, {
      model: id,
      capabilities: loaded.capabilities,
    });
  }
  return loaded;
}

/** The one generation path every dialect uses: resolve the model, wait for a sequence, stream tokens. */
export async function startGeneration(registry: ModelRegistry, req: GenerateRequest, signal: AbortSignal): Promise<GenerationStream> {
  const model = await textModel(registry, req.model);
  return startObserved(registry, model, req, signal);
}

/** Starts a request on a loaded model and tells the registry's observers its queue wait and, at the end, its result. */
export async function startObserved(registry: ModelRegistry, model: TextModel, req: GenerateRequest, signal: AbortSignal): Promise<GenerationStream> {
  const waitStarted = performance.now();
  const stream = await model.start(req, signal);
  registry.emit({ kind: "queue", model: req.model, ms: performance.now() - waitStarted });
  return observeStream(registry, req.model, stream);
}

/**
 * Emits "generation" once, when the stream returns its result. It patches `next` on the stream itself
 * (no wrapping generator, so `return()` and its sequence release are untouched): a token costs one
 * `.then` and a flag check, nothing more.
 */
export function observeStream(registry: ModelRegistry, model: string, stream: GenerationStream): GenerationStream {
  const next = stream.next.bind(stream);
  let reported = false;
  stream.next = (...args) =>
    next(...args).then((step) => {
      if (step.done && !reported && step.value) {
        reported = true;
        registry.emit({ kind: "generation", model, result: step.value });
      }
      return step;
    });
  return stream;
}
